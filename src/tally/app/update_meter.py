"""Update a meter: labels in place; a changed definition makes a new version (never an edit).

A change to any definition field (event_type, aggregation, value_property, time_unit, filters,
group_by) creates version N+1, whose rollups are backfilled from the retained raw events; earlier
versions keep their meaning and stay queryable (`meter_version`). Usage queries default to the
latest version. Sending the current definition again changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import meters as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app.meter_queries import MeterState
from tally.core.metering.meters import DEFINITION_FIELDS, MeterDefinitionInput, MeterLabels, definition_changes
from tally.core.rejections import InvariantViolation, Rejected

VERSIONS_PER_METER_MAX = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterUpdate:
    """What to change; None leaves a label as it is. `definition` holds only the definition fields
    to change, by name (as in `MeterDefinitionInput`): e.g. {"group_by": ["model"]}."""

    name: str | None = None
    description: str | None = None
    metadata: Mapping[str, str] | None = None
    definition: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UpdatedMeter:
    state: MeterState
    version_created: bool
    changed_fields: tuple[str, ...]


def update_meter(engine: Engine, clock: Clock, tenant_id: uuid.UUID, code: str, update: MeterUpdate) -> UpdatedMeter:
    unknown = set(update.definition) - set(DEFINITION_FIELDS)
    if unknown:  # pragma: no cover - the API only passes known fields
        raise ValueError(f"not definition fields: {sorted(unknown)}")

    return run_in_transaction(engine, lambda connection: update_meter_in(connection, clock, tenant_id, code, update))


def update_meter_in(
    connection: psycopg.Connection[Any], clock: Clock, tenant_id: uuid.UUID, code: str, update: MeterUpdate
) -> UpdatedMeter:
    """`update_meter` inside the caller's transaction (`tally catalog apply`)."""
    meter = store.get_meter(connection, tenant_id, code, for_update=True)
    if meter is None:
        raise Rejected.because("meter_not_found", f"no meter {code!r} for this tenant", "code")
    current = store.get_version(connection, tenant_id, meter.id, meter.latest_version)
    if current is None:
        raise InvariantViolation("a meter's latest version must exist")
    labels = MeterLabels(
        code=meter.code,
        name=update.name if update.name is not None else meter.name,
        description=update.description if update.description is not None else meter.description,
    )
    proposed = replace(MeterDefinitionInput.of(current.definition), **dict(update.definition)).validate()
    changed = definition_changes(current.definition, proposed)
    now = clock.now()
    version = current
    if changed:
        if meter.latest_version >= VERSIONS_PER_METER_MAX:
            raise Rejected.because(
                "meter_versions_exceed_limit", f"a meter has at most {VERSIONS_PER_METER_MAX} versions"
            )
        version_id = store.insert_version(
            connection,
            tenant_id=tenant_id,
            meter_id=meter.id,
            version=meter.latest_version + 1,
            definition=proposed,
            now=now,
        )
        created = store.get_version_by_id(connection, version_id)
        if created is None:
            raise InvariantViolation("the meter version just inserted must read back")
        version = created
    label_changes = (
        labels.name != meter.name
        or labels.description != meter.description
        or (update.metadata is not None and dict(update.metadata) != meter.metadata)
    )
    if changed or label_changes:
        meter = store.update_meter(
            connection,
            meter.id,
            name=labels.name,
            description=labels.description,
            metadata=update.metadata if update.metadata is not None else meter.metadata,
            latest_version=version.version,
            now=now,
        )
    return UpdatedMeter(MeterState(meter, version), version_created=bool(changed), changed_fields=changed)
