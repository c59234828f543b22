"""Verify: every rollup equals a recomputation from raw effective events (`tally usage verify`).

For each ready meter version (of one tenant, or all), in one REPEATABLE READ snapshot, the rollup
rows and distinct values are recomputed from the raw events of every batch no longer queued and
compared column by column with what is stored. Cells touched by queued batches are behind by design
(queries read them raw) and are reported as pending, not as differences.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from tally.adapters.postgres import meters as catalog
from tally.adapters.postgres import rollups
from tally.adapters.postgres.connections import psycopg_transaction
from tally.core.metering.usage import floor_hour
from tally.core.rejections import Rejected

Difference = rollups.Difference


def retained_since(now: datetime, retention_days: int | None) -> datetime | None:
    """The first hour whose raw events are surely all retained: retention drops whole months whose
    end is past the cutoff, so from the start of the cutoff's month on. None: nothing is dropped."""
    if retention_days is None:
        return None
    cutoff = (now - timedelta(days=retention_days)).astimezone(UTC)
    return cutoff.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class VersionReport:
    tenant_id: uuid.UUID
    meter_code: str
    version: int
    state: str
    rows_expected: int
    rows_stored: int
    pending_cells: int
    difference_count: int
    sample: tuple[rollups.Difference, ...]


@dataclass(frozen=True, slots=True)
class VerifyReport:
    versions: tuple[VersionReport, ...]

    @property
    def difference_count(self) -> int:
        return sum(version.difference_count for version in self.versions)

    @property
    def ok(self) -> bool:
        return self.difference_count == 0


# Before any event: verify everything retained.
BEGINNING = datetime(1, 1, 2, tzinfo=UTC)


def verify_usage_rollups(
    engine: Engine,
    tenant_id: uuid.UUID | None = None,
    meter_code: str | None = None,
    since: datetime | None = None,
) -> VerifyReport:
    """`since`: check the hours from then on (raw events before it may be past retention: see
    `retained_since`)."""
    start = floor_hour(since) if since is not None else BEGINNING
    reports = []
    with psycopg_transaction(engine) as connection:
        rollups.refresh_statistics(connection)
    with psycopg_transaction(engine) as connection:
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        versions = catalog.all_versions(connection, tenant_id)
        if meter_code is not None:
            versions = [version for version in versions if version.code == meter_code]
            if not versions:
                raise Rejected.because("meter_not_found", f"no meter {meter_code!r}", "meter")
        for version in versions:
            if version.rollup_state != catalog.READY:
                reports.append(
                    VersionReport(
                        version.tenant_id, version.code, version.version, version.rollup_state, 0, 0, 0, 0, ()
                    )
                )
                continue
            check = rollups.verify_version(
                connection, version.tenant_id, rollups.compile_meter(version.id, version.definition), start
            )
            reports.append(
                VersionReport(
                    tenant_id=version.tenant_id,
                    meter_code=version.code,
                    version=version.version,
                    state=version.rollup_state,
                    rows_expected=check.rows_expected,
                    rows_stored=check.rows_stored,
                    pending_cells=check.pending_cells,
                    difference_count=check.difference_count,
                    sample=check.sample,
                )
            )
    return VerifyReport(tuple(reports))
