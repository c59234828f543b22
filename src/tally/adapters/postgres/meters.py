"""The meter catalog's PostgreSQL side: `meters` and their immutable `meter_versions`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from tally.adapters.pagination import Page, PageRequest
from tally.core.metering.meters import MeterDefinition, MeterVersion, definition_from_document
from tally.core.rejections import InvariantViolation

BACKFILLING = "backfilling"
READY = "ready"


@dataclass(frozen=True, slots=True)
class MeterRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    code: str
    name: str
    description: str
    metadata: dict[str, Any]
    latest_version: int
    created_at: datetime
    updated_at: datetime


METER_COLUMNS = "id, tenant_id, code, name, description, metadata, latest_version, created_at, updated_at"


@dataclass(frozen=True, slots=True)
class MeterVersionRow:
    id: int
    tenant_id: uuid.UUID
    meter_id: uuid.UUID
    code: str
    version: int
    definition: MeterDefinition
    created_at: datetime
    rollup_state: str
    rollups_ready_at: datetime | None

    def to_core(self) -> MeterVersion:
        return MeterVersion(code=self.code, version=self.version, version_id=self.id, definition=self.definition)


_VERSION_SELECT = """
SELECT v.id, v.tenant_id, v.meter_id, m.code, v.version, v.definition, v.created_at, v.rollup_state,
       v.rollups_ready_at
FROM meter_versions v JOIN meters m ON m.id = v.meter_id"""


def _version_row(row: tuple[Any, ...]) -> MeterVersionRow:
    values = list(row)
    values[5] = definition_from_document(values[5])
    return MeterVersionRow(*values)


def insert_meter(
    connection: psycopg.Connection[Any],
    *,
    meter_id: uuid.UUID,
    tenant_id: uuid.UUID,
    code: str,
    name: str,
    description: str,
    metadata: Mapping[str, str],
    now: datetime,
) -> MeterRow | None:
    """The new meter, or None when the tenant already has one with this code."""
    row = connection.execute(
        f"""INSERT INTO meters (id, tenant_id, code, name, description, metadata, latest_version, created_at,
                                updated_at)
            VALUES (%s, %s, %s, %s, %s, %s, 1, %s, %s)
            ON CONFLICT (tenant_id, code) DO NOTHING
            RETURNING {METER_COLUMNS}""",
        (meter_id, tenant_id, code, name, description, json.dumps(dict(metadata)), now, now),
    ).fetchone()
    return MeterRow(*row) if row else None


def insert_version(
    connection: psycopg.Connection[Any],
    *,
    tenant_id: uuid.UUID,
    meter_id: uuid.UUID,
    version: int,
    definition: MeterDefinition,
    now: datetime,
) -> int:
    """A new version, to be backfilled; returns its id."""
    row = connection.execute(
        """INSERT INTO meter_versions (tenant_id, meter_id, version, event_type, definition, created_at, rollup_state)
           VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (tenant_id, meter_id, version, definition.event_type, json.dumps(definition.document()), now, BACKFILLING),
    ).fetchone()
    if row is None:
        raise InvariantViolation("INSERT … RETURNING answers a row")
    return int(row[0])


def get_meter(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, code: str, *, for_update: bool = False
) -> MeterRow | None:
    lock = " FOR UPDATE" if for_update else ""
    row = connection.execute(
        f"SELECT {METER_COLUMNS} FROM meters WHERE tenant_id = %s AND code = %s{lock}", (tenant_id, code)
    ).fetchone()
    return MeterRow(*row) if row else None


def update_meter(
    connection: psycopg.Connection[Any],
    meter_id: uuid.UUID,
    *,
    name: str,
    description: str,
    metadata: Mapping[str, str],
    latest_version: int,
    now: datetime,
) -> MeterRow:
    row = connection.execute(
        f"""UPDATE meters SET name = %s, description = %s, metadata = %s, latest_version = %s, updated_at = %s
            WHERE id = %s RETURNING {METER_COLUMNS}""",
        (name, description, json.dumps(dict(metadata)), latest_version, now, meter_id),
    ).fetchone()
    if row is None:
        raise InvariantViolation("the meter being updated exists (it was locked)")
    return MeterRow(*row)


def get_version(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, meter_id: uuid.UUID, version: int
) -> MeterVersionRow | None:
    row = connection.execute(
        f"{_VERSION_SELECT} WHERE v.tenant_id = %s AND v.meter_id = %s AND v.version = %s",
        (tenant_id, meter_id, version),
    ).fetchone()
    return _version_row(row) if row else None


def get_version_by_id(connection: psycopg.Connection[Any], version_id: int) -> MeterVersionRow | None:
    row = connection.execute(f"{_VERSION_SELECT} WHERE v.id = %s", (version_id,)).fetchone()
    return _version_row(row) if row else None


def version_in_force(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, meter_id: uuid.UUID, at: datetime
) -> MeterVersionRow | None:
    """The meter's latest version created at or before `at` (None: every version is newer)."""
    row = connection.execute(
        f"""{_VERSION_SELECT} WHERE v.tenant_id = %s AND v.meter_id = %s AND v.created_at <= %s
            ORDER BY v.version DESC LIMIT 1""",
        (tenant_id, meter_id, at),
    ).fetchone()
    return _version_row(row) if row else None


def list_versions(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, meter_id: uuid.UUID
) -> list[MeterVersionRow]:
    rows = connection.execute(
        f"{_VERSION_SELECT} WHERE v.tenant_id = %s AND v.meter_id = %s ORDER BY v.version", (tenant_id, meter_id)
    ).fetchall()
    return [_version_row(row) for row in rows]


def versions_for_types(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, event_types: Iterable[str]
) -> list[MeterVersionRow]:
    """Every version (of every meter of the tenant) that counts events of these types."""
    rows = connection.execute(
        f"{_VERSION_SELECT} WHERE v.tenant_id = %s AND v.event_type = ANY(%s) ORDER BY v.id",
        (tenant_id, sorted(set(event_types))),
    ).fetchall()
    return [_version_row(row) for row in rows]


def all_versions(connection: psycopg.Connection[Any], tenant_id: uuid.UUID | None = None) -> list[MeterVersionRow]:
    if tenant_id is None:
        rows = connection.execute(f"{_VERSION_SELECT} ORDER BY v.id").fetchall()
    else:
        rows = connection.execute(f"{_VERSION_SELECT} WHERE v.tenant_id = %s ORDER BY v.id", (tenant_id,)).fetchall()
    return [_version_row(row) for row in rows]


def backfill_pending(connection: psycopg.Connection[Any]) -> bool:
    row = connection.execute("SELECT EXISTS (SELECT 1 FROM meter_versions WHERE rollup_state = %s)", (BACKFILLING,))
    found = row.fetchone()
    return bool(found and found[0])


def next_backfill(connection: psycopg.Connection[Any]) -> MeterVersionRow | None:
    """The oldest version still to backfill that no other worker is on (its row stays locked)."""
    row = connection.execute(
        f"{_VERSION_SELECT} WHERE v.rollup_state = %s ORDER BY v.id LIMIT 1 FOR UPDATE OF v SKIP LOCKED",
        (BACKFILLING,),
    ).fetchone()
    return _version_row(row) if row else None


def mark_ready(connection: psycopg.Connection[Any], version_id: int, now: datetime) -> None:
    connection.execute(
        "UPDATE meter_versions SET rollup_state = %s, rollups_ready_at = %s WHERE id = %s", (READY, now, version_id)
    )


def list_meters(connection: psycopg.Connection[Any], tenant_id: uuid.UUID, page: PageRequest) -> Page[MeterRow]:
    """Meters in id (creation) order, oldest first."""
    filters = ["tenant_id = %(tenant_id)s"]
    parameters: dict[str, Any] = {"tenant_id": tenant_id, "limit": page.limit + 1}
    if page.starting_after is not None:
        filters.append("id > %(starting_after)s")
        parameters["starting_after"] = page.starting_after
    if page.ending_before is not None:
        filters.append("id < %(ending_before)s")
        parameters["ending_before"] = page.ending_before
    order = "DESC" if page.backwards else "ASC"
    rows = [
        MeterRow(*row)
        for row in connection.execute(
            f"SELECT {METER_COLUMNS} FROM meters WHERE {' AND '.join(filters)} ORDER BY id {order} LIMIT %(limit)s",
            parameters,
        ).fetchall()
    ]
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    if page.backwards:
        rows.reverse()
    return Page(items=rows, has_more=has_more, backwards=page.backwards)
