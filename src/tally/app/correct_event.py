"""Correct a stored event: retract it, or amend its properties — as a new fact, never an edit.

One transaction: lock the event's registry row (corrections of one event are serialized), gather
the event and its corrections, let the core decide, then record the correction as its own ingest
batch (`ingest_batches.source = 'correction'`, `event_count = 1`) holding one `event_corrections` row
(`event_corrections.batch_id`), queue that batch in `rollup_queue`, and flag the change in
`late_usage` (kind `retract` or `amend`) when the event's period is already invoiced.

The rollup worker recognizes a correction batch by its source and recomputes the rollups of the
hour of each corrected event (`events."timestamp"` of `event_corrections.event_id`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id
from tally.adapters.postgres import events as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.core.metering import corrections as rules
from tally.core.metering.events import canonical_json, decode_json, parse_properties
from tally.core.rejections import Rejected, Rejection

__all__ = ["CorrectionInput", "CorrectionResult", "EventCorrection", "correct_event"]

EventCorrection = store.CorrectionRow


@dataclass(frozen=True, slots=True, kw_only=True)
class CorrectionInput:
    event_id: str
    kind: Literal["retract", "amend"]
    properties: object = None  # amend: the new properties, a decoded JSON object (numbers exact)
    reason: object = None


@dataclass(frozen=True, slots=True)
class CorrectionResult:
    """`created`: recorded now (False: an earlier identical correction answers). `late`: the event is
    in an invoiced period, and the change was flagged for invoicing."""

    correction: EventCorrection
    created: bool
    late: bool


def correct_event(engine: Engine, clock: Clock, tenant_id: uuid.UUID, correction: CorrectionInput) -> CorrectionResult:
    """Raises `Rejected`: `event_not_found`, `event_already_retracted`, or a properties/reason code."""
    reason = rules.check_reason(correction.reason)
    if isinstance(reason, Rejection):
        raise Rejected(reason)
    properties_json: str | None = None
    if correction.kind == "amend":
        if correction.properties is None:
            raise Rejected.because("properties_required", "an amendment gives the new properties", "properties")
        parsed = parse_properties(correction.properties)
        if isinstance(parsed, Rejection):
            raise Rejected(parsed)
        properties_json = parsed[1]
    elif correction.properties is not None:
        raise Rejected.because("unknown_field", "a retraction takes no properties", "properties")
    return run_in_transaction(
        engine,
        lambda connection: _correct(
            connection, clock, tenant_id, correction, properties_json=properties_json, reason=reason
        ),
    )


def _correct(
    connection: psycopg.Connection[Any],
    clock: Clock,
    tenant_id: uuid.UUID,
    correction: CorrectionInput,
    *,
    properties_json: str | None,
    reason: str,
) -> CorrectionResult:
    event = store.find_event(connection, tenant_id, correction.event_id, lock=True)
    if event is None:
        raise Rejected.because("event_not_found", "no such event for this tenant", "id")
    earlier = store.corrections_of(connection, tenant_id, correction.event_id)
    closed_through = store.closed_through(connection, tenant_id, event.customer)
    late = closed_through is not None and event.timestamp < closed_through
    decision = rules.decide_correction([_core(row) for row in earlier], correction.kind, properties_json)
    if isinstance(decision, Rejection):
        raise Rejected(decision)
    if decision is not None:
        return CorrectionResult(earlier[decision], created=False, late=late)
    now = clock.now()
    row = store.write_correction(
        connection,
        tenant_id,
        correction_id=new_id(),
        event_id=correction.event_id,
        kind=correction.kind,
        properties_json=properties_json,
        reason=reason,
        created_at=now,
    )
    if late:
        store.flag_late_usage(
            connection, tenant_id, correction.kind, now, [(new_id(), event.event_id, event.customer, event.timestamp)]
        )
    return CorrectionResult(row, created=True, late=late)


def _core(row: EventCorrection) -> rules.Correction:
    # Stored as jsonb; compared in canonical form.
    properties = canonical_json(decode_json(row.properties_json)) if row.properties_json is not None else None
    return rules.Correction(kind=row.kind, properties_json=properties)
