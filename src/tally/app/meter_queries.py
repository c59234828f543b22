"""Read the meter catalog: a meter, its versions, the list, and the version a query means."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Engine

from tally.adapters.pagination import Page, PageRequest
from tally.adapters.postgres import meters as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.core.metering.meters import MeterVersion
from tally.core.rejections import InvariantViolation, Rejected

MeterRow = store.MeterRow
MeterVersionRow = store.MeterVersionRow


@dataclass(frozen=True, slots=True)
class MeterState:
    """A meter with its latest version."""

    meter: store.MeterRow
    version: store.MeterVersionRow


def _not_found(code: str) -> Rejected:
    return Rejected.because("meter_not_found", f"no meter {code!r} for this tenant", "meter")


def get_meter(engine: Engine, tenant_id: uuid.UUID, code: str) -> MeterState:
    with psycopg_transaction(engine) as connection:
        meter = store.get_meter(connection, tenant_id, code)
        if meter is None:
            raise _not_found(code)
        version = store.get_version(connection, tenant_id, meter.id, meter.latest_version)
    if version is None:  # pragma: no cover - written together
        raise RuntimeError(f"meter {code} has no version {meter.latest_version}")
    return MeterState(meter, version)


def list_meters(engine: Engine, tenant_id: uuid.UUID, page: PageRequest | None = None) -> Page[MeterState]:
    page = page or PageRequest()
    with psycopg_transaction(engine) as connection:
        found = store.list_meters(connection, tenant_id, page)
        states = []
        for meter in found.items:
            version = store.get_version(connection, tenant_id, meter.id, meter.latest_version)
            if version is None:
                raise InvariantViolation("a meter's latest version must exist")
            states.append(MeterState(meter, version))
    return Page(items=states, has_more=found.has_more, backwards=found.backwards)


def list_versions(engine: Engine, tenant_id: uuid.UUID, code: str) -> list[store.MeterVersionRow]:
    """Every version of a meter, oldest first."""
    with psycopg_transaction(engine) as connection:
        meter = store.get_meter(connection, tenant_id, code)
        if meter is None:
            raise _not_found(code)
        return store.list_versions(connection, tenant_id, meter.id)


def resolve_version(engine: Engine, tenant_id: uuid.UUID, code: str, version: int | None = None) -> MeterVersion:
    """The version a usage query means: the latest, or the one asked for."""
    with psycopg_transaction(engine) as connection:
        meter = store.get_meter(connection, tenant_id, code)
        if meter is None:
            raise _not_found(code)
        row = store.get_version(
            connection, tenant_id, meter.id, version if version is not None else meter.latest_version
        )
    if row is None:
        raise Rejected.because(
            "meter_version_not_found", f"meter {code!r} has versions 1 to {meter.latest_version}", "meter_version"
        )
    return row.to_core()
