"""Rows of `idempotent_requests`: one per (tenant, Idempotency-Key), in flight and then completed.

`locked_until` doubles as the fencing token of the request that owns an in-flight row: every claim
or take-over sets it strictly later than before, so a request whose row was taken over can no longer
complete or delete it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from tally.adapters.postgres.tables import idempotent_requests as table


def insert_in_flight(
    connection: Connection,
    *,
    tenant_id: uuid.UUID,
    key: str,
    method: str,
    path: str,
    fingerprint: bytes,
    now: datetime,
    locked_until: datetime,
) -> bool:
    """Claim a key nobody holds. False: a row exists (it is left untouched)."""
    statement = (
        insert(table)
        .values(
            tenant_id=tenant_id,
            key=key,
            method=method,
            path=path,
            request_fingerprint=fingerprint,
            state="in_flight",
            locked_until=locked_until,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[table.c.tenant_id, table.c.key])
        .returning(table.c.key)
    )
    return connection.execute(statement).first() is not None


def lock(connection: Connection, tenant_id: uuid.UUID, key: str) -> RowMapping | None:
    statement = select(table).where(table.c.tenant_id == tenant_id, table.c.key == key).with_for_update()
    return connection.execute(statement).mappings().one_or_none()


def take_over(
    connection: Connection,
    *,
    tenant_id: uuid.UUID,
    key: str,
    method: str,
    path: str,
    fingerprint: bytes,
    now: datetime,
    locked_until: datetime,
) -> None:
    """Make a locked row in flight again for a new owner (expired row, or a crashed owner)."""
    connection.execute(
        update(table)
        .where(table.c.tenant_id == tenant_id, table.c.key == key)
        .values(
            method=method,
            path=path,
            request_fingerprint=fingerprint,
            state="in_flight",
            locked_until=locked_until,
            response_status=None,
            response_headers=None,
            response_body=None,
            created_at=now,
            completed_at=None,
        )
    )


def complete(
    connection: Connection,
    *,
    tenant_id: uuid.UUID,
    key: str,
    locked_until: datetime,
    status: int,
    headers: list[list[str]],
    body: bytes,
    now: datetime,
) -> bool:
    """Store the response if this owner still holds the row. False: it was taken over."""
    statement = (
        update(table)
        .where(
            table.c.tenant_id == tenant_id,
            table.c.key == key,
            table.c.state == "in_flight",
            table.c.locked_until == locked_until,
        )
        .values(
            state="completed",
            locked_until=None,
            response_status=status,
            response_headers=headers,
            response_body=body,
            completed_at=now,
        )
        .returning(table.c.key)
    )
    return connection.execute(statement).first() is not None


def delete_in_flight(connection: Connection, *, tenant_id: uuid.UUID, key: str, locked_until: datetime) -> bool:
    statement = (
        delete(table)
        .where(
            table.c.tenant_id == tenant_id,
            table.c.key == key,
            table.c.state == "in_flight",
            table.c.locked_until == locked_until,
        )
        .returning(table.c.key)
    )
    return connection.execute(statement).first() is not None


def delete_created_before(connection: Connection, cutoff: datetime, batch_size: int) -> int:
    """Delete up to `batch_size` rows created before `cutoff`; returns how many."""
    batch = (
        select(table.c.tenant_id, table.c.key)
        .where(table.c.created_at < cutoff)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    )
    keys = [(row.tenant_id, row.key) for row in connection.execute(batch)]
    if not keys:
        return 0
    result = connection.execute(delete(table).where(tuple_(table.c.tenant_id, table.c.key).in_(keys)))
    return int(result.rowcount)


def stored_response(row: RowMapping) -> tuple[int, list[list[str]], bytes]:
    headers: Any = row["response_headers"] or []
    return (
        int(row["response_status"]),
        [[str(name), str(value)] for name, value in headers],
        bytes(row["response_body"] or b""),
    )
