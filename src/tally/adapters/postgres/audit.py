"""Audit log rows: append-only records of who changed what."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select

from tally.adapters.postgres.tables import audit_log


def insert_entry(
    connection: Connection,
    *,
    entry_id: uuid.UUID,
    tenant_id: uuid.UUID,
    actor: str,
    action: str,
    object_type: str | None,
    object_id: str | None,
    request_id: str | None,
    details: dict[str, Any],
) -> None:
    connection.execute(
        insert(audit_log).values(
            id=entry_id,
            tenant_id=tenant_id,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            request_id=request_id,
            details=details,
        )
    )


def latest(connection: Connection, tenant_id: uuid.UUID, limit: int) -> list[RowMapping]:
    statement = (
        select(audit_log)
        .where(audit_log.c.tenant_id == tenant_id)
        .order_by(audit_log.c.occurred_at.desc(), audit_log.c.id.desc())
        .limit(limit)
    )
    return list(connection.execute(statement).mappings())
