"""Tenant rows."""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, RowMapping, select

from tally.adapters.postgres.tables import tenants


def get(connection: Connection, tenant_id: uuid.UUID, *, for_update: bool = False) -> RowMapping | None:
    statement = select(tenants).where(tenants.c.id == tenant_id)
    if for_update:
        statement = statement.with_for_update()
    return connection.execute(statement).mappings().one_or_none()


def find_by_name(connection: Connection, name: str, limit: int) -> list[RowMapping]:
    statement = select(tenants).where(tenants.c.name == name).order_by(tenants.c.id).limit(limit)
    return list(connection.execute(statement).mappings())


def list_all(connection: Connection, limit: int) -> list[RowMapping]:
    statement = select(tenants).order_by(tenants.c.id.desc()).limit(limit)
    return list(connection.execute(statement).mappings())


def exists_any(connection: Connection) -> bool:
    return connection.execute(select(tenants.c.id).limit(1)).first() is not None
