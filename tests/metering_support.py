"""Test helpers for meters and usage: write events and corrections exactly as ingest does, make meters.

`write_events` stores one batch the way `tally.app.ingest_events` does — `ingest_batches`,
`event_ids`, `events` and `rollup_queue` rows in one transaction — without its validation and
timestamp horizon, so tests can place events anywhere in time. `write_corrections` stores a
correction batch the same way (`source = 'correction'`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from tally.adapters.clock import FixedClock
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.backfill_meter_rollups import backfill_pending_versions
from tally.app.create_meter import MeterInput, create_meter
from tally.core.metering.aggregation import EventCorrection, MeteredEvent, effective_events
from tally.core.metering.meters import MeterDefinitionInput, MeterVersion

CLOCK = FixedClock(datetime(2030, 1, 1, tzinfo=UTC))


def to_json(value: object) -> str:
    """JSON text of a property value with exact numbers (Decimal in plain notation)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(key)}:{to_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(item) for item in value) + "]"
    raise TypeError(f"not a JSON value: {value!r}")


def write_events(engine: Engine, tenant_id: uuid.UUID, events: Sequence[MeteredEvent], source: str = "api") -> int:
    """One committed, queued batch holding `events`; returns its batch id."""
    with psycopg_transaction(engine) as connection:
        row = connection.execute(
            """INSERT INTO ingest_batches (tenant_id, received_at, source, event_count)
               VALUES (%s, now(), %s, %s) RETURNING batch_id""",
            (tenant_id, source, len(events)),
        ).fetchone()
        assert row is not None
        batch_id = int(row[0])
        if events:
            with connection.cursor() as cursor:
                cursor.executemany(
                    """INSERT INTO event_ids (tenant_id, event_id, content_hash, "timestamp", batch_id)
                       VALUES (%s, %s, %s, %s, %s)""",
                    [
                        (
                            tenant_id,
                            event.event_id,
                            hashlib.sha256(event.event_id.encode()).digest()[:16],
                            event.timestamp,
                            batch_id,
                        )
                        for event in events
                    ],
                )
                cursor.executemany(
                    """INSERT INTO events (tenant_id, event_id, customer, type, "timestamp", properties, received_at,
                                           batch_id)
                       VALUES (%s, %s, %s, %s, %s, %s::jsonb, now(), %s)""",
                    [
                        (
                            tenant_id,
                            event.event_id,
                            event.customer,
                            event.type,
                            event.timestamp,
                            to_json(event.properties),
                            batch_id,
                        )
                        for event in events
                    ],
                )
        connection.execute(
            "INSERT INTO rollup_queue (batch_id, tenant_id, queued_at) VALUES (%s, %s, now())", (batch_id, tenant_id)
        )
    return batch_id


@dataclass(frozen=True)
class Correction:
    event_id: str
    kind: str  # retract | amend
    properties: Mapping[str, Any] | None = None


def write_corrections(engine: Engine, tenant_id: uuid.UUID, corrections: Sequence[Correction]) -> int:
    """One committed, queued correction batch; corrections get increasing created_at in list order."""
    with psycopg_transaction(engine) as connection:
        row = connection.execute(
            """INSERT INTO ingest_batches (tenant_id, received_at, source, event_count)
               VALUES (%s, now(), 'correction', %s) RETURNING batch_id""",
            (tenant_id, len(corrections)),
        ).fetchone()
        assert row is not None
        batch_id = int(row[0])
        for correction in corrections:
            connection.execute(
                """INSERT INTO event_corrections (id, tenant_id, event_id, kind, properties, created_at, batch_id)
                   VALUES (%s, %s, %s, %s, %s::jsonb, clock_timestamp(), %s)""",
                (
                    uuid.uuid4(),
                    tenant_id,
                    correction.event_id,
                    correction.kind,
                    to_json(correction.properties) if correction.properties is not None else None,
                    batch_id,
                ),
            )
        connection.execute(
            "INSERT INTO rollup_queue (batch_id, tenant_id, queued_at) VALUES (%s, %s, now())", (batch_id, tenant_id)
        )
    return batch_id


class Ledger:
    """What a test wrote, to compute the reference: raw events and corrections in order."""

    def __init__(self) -> None:
        self.events: list[MeteredEvent] = []
        self.corrections: list[EventCorrection] = []

    def add_events(self, events: Iterable[MeteredEvent]) -> None:
        self.events.extend(events)

    def add_corrections(self, corrections: Iterable[Correction]) -> None:
        for correction in corrections:
            self.corrections.append(
                EventCorrection(correction.event_id, correction.kind, len(self.corrections), correction.properties)
            )

    def effective(self) -> list[MeteredEvent]:
        return effective_events(self.events, self.corrections)


def make_meter(
    engine: Engine,
    tenant_id: uuid.UUID,
    code: str,
    *,
    event_type: str = "call",
    aggregation: str = "count",
    value_property: str | None = None,
    time_unit: str | None = None,
    filters: Sequence[Mapping[str, object]] = (),
    group_by: Sequence[str] = (),
    backfill: bool = True,
) -> MeterVersion:
    created = create_meter(
        engine,
        CLOCK,
        tenant_id,
        MeterInput(
            code=code,
            definition=MeterDefinitionInput(
                event_type=event_type,
                aggregation=aggregation,
                value_property=value_property,
                time_unit=time_unit,
                filters=filters,
                group_by=group_by,
            ),
        ),
    )
    if backfill:
        backfill_pending_versions(engine, CLOCK)
    return created.state.version.to_core()
