"""Tenants: the owner of every other row. Created and listed by operators (CLI), never over the API."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, RowMapping, text

from tally.adapters.ids import new_id
from tally.adapters.postgres import tenants as rows
from tally.core.rejections import Rejected

TENANTS_LISTED_MAX = 1000


@dataclass(frozen=True, slots=True)
class Tenant:
    id: uuid.UUID
    name: str
    created_at: datetime
    metadata: Mapping[str, Any] = field(default_factory=dict)


def create_tenant(engine: Engine, name: str) -> uuid.UUID:
    if not 1 <= len(name) <= 200:
        raise Rejected.because("tenant_name_length_must_be_1_to_200", "a tenant name has 1 to 200 characters", "name")
    tenant_id = new_id()
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO tenants (id, name) VALUES (:id, :name)"), {"id": tenant_id, "name": name})
    return tenant_id


def get_tenant(engine: Engine, tenant_id: uuid.UUID) -> Tenant:
    with engine.connect() as connection:
        row = rows.get(connection, tenant_id)
    if row is None:
        raise Rejected.because("tenant_not_found", "no such tenant")
    return _tenant(row)


def find_tenants_by_name(engine: Engine, name: str) -> list[Tenant]:
    """Names are labels, not keys: several tenants may share one."""
    with engine.connect() as connection:
        return [_tenant(row) for row in rows.find_by_name(connection, name, limit=TENANTS_LISTED_MAX)]


def list_tenants(engine: Engine) -> list[Tenant]:
    """The newest `TENANTS_LISTED_MAX` tenants, newest first."""
    with engine.connect() as connection:
        return [_tenant(row) for row in rows.list_all(connection, limit=TENANTS_LISTED_MAX)]


def any_tenant_exists(engine: Engine) -> bool:
    with engine.connect() as connection:
        return rows.exists_any(connection)


def _tenant(row: RowMapping) -> Tenant:
    return Tenant(id=row["id"], name=row["name"], created_at=row["created_at"], metadata=dict(row["metadata"]))
