"""Create a meter: its labels and version 1 of its definition, whose rollups are then backfilled.

Idempotent on the code: creating a meter that exists with the same definition and labels answers
it again (`created=False`); with anything different it is rejected `meter_exists_with_different_<field>`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id
from tally.adapters.postgres import meters as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app.meter_queries import MeterState
from tally.core.metering.meters import MeterDefinitionInput, MeterLabels, definition_changes
from tally.core.rejections import InvariantViolation, Rejected

METERS_PER_TENANT_MAX = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterInput:
    code: str
    name: str | None = None  # default: the code
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    definition: MeterDefinitionInput


@dataclass(frozen=True, slots=True)
class CreatedMeter:
    state: MeterState
    created: bool


def create_meter(engine: Engine, clock: Clock, tenant_id: uuid.UUID, meter: MeterInput) -> CreatedMeter:
    MeterLabels(code=meter.code, name=meter.name or meter.code, description=meter.description)
    meter.definition.validate()
    return run_in_transaction(engine, lambda connection: create_meter_in(connection, clock, tenant_id, meter))


def create_meter_in(
    connection: psycopg.Connection[Any], clock: Clock, tenant_id: uuid.UUID, meter: MeterInput
) -> CreatedMeter:
    """`create_meter` inside the caller's transaction (`tally catalog apply`)."""
    labels = MeterLabels(code=meter.code, name=meter.name or meter.code, description=meter.description)
    definition = meter.definition.validate()
    count = connection.execute("SELECT count(*) FROM meters WHERE tenant_id = %s", (tenant_id,)).fetchone()
    now = clock.now()
    row = store.insert_meter(
        connection,
        meter_id=new_id(),
        tenant_id=tenant_id,
        code=labels.code,
        name=labels.name,
        description=labels.description,
        metadata=meter.metadata,
        now=now,
    )
    if row is None:
        existing = store.get_meter(connection, tenant_id, labels.code)
        if existing is None:
            raise InvariantViolation("a meter whose code conflicted must exist")
        version = store.get_version(connection, tenant_id, existing.id, existing.latest_version)
        if version is None:
            raise InvariantViolation("a meter's latest version must exist")
        changed = definition_changes(version.definition, definition)
        if changed:
            raise Rejected.because(
                f"meter_exists_with_different_{changed[0]}",
                f"meter {labels.code} exists with a different {changed[0]}: update it to make a new version",
                changed[0],
            )
        for name, value in (("name", labels.name), ("description", labels.description)):
            if getattr(existing, name) != value:
                raise Rejected.because(
                    f"meter_exists_with_different_{name}",
                    f"meter {labels.code} exists with a different {name}",
                    name,
                )
        return CreatedMeter(MeterState(existing, version), created=False)
    if count is None:
        raise InvariantViolation("the meter count was read before inserting")
    if count[0] >= METERS_PER_TENANT_MAX:
        raise Rejected.because(
            "meters_exceed_limit", f"a tenant has at most METERS_PER_TENANT_MAX = {METERS_PER_TENANT_MAX} meters"
        )
    version_id = store.insert_version(
        connection, tenant_id=tenant_id, meter_id=row.id, version=1, definition=definition, now=now
    )
    version = store.get_version_by_id(connection, version_id)
    if version is None:
        raise InvariantViolation("the meter version just inserted must read back")
    return CreatedMeter(MeterState(row, version), created=True)
