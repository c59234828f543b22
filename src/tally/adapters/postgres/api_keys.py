"""API key rows. Only the sha256 of a secret is ever stored."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, RowMapping, func, insert, or_, select, update

from tally.adapters.pagination import Page, PageRequest
from tally.adapters.postgres.pagination import fetch_page
from tally.adapters.postgres.tables import api_keys

# `last_used_at` is a hint for people ("is this key still used?"), so it is written at most this often.
LAST_USED_RESOLUTION = timedelta(minutes=1)

_PUBLIC_COLUMNS = (
    api_keys.c.id,
    api_keys.c.tenant_id,
    api_keys.c.name,
    api_keys.c.secret_hint,
    api_keys.c.scopes,
    api_keys.c.created_at,
    api_keys.c.last_used_at,
    api_keys.c.revoked_at,
    api_keys.c.metadata,
)


def insert_api_key(
    connection: Connection,
    *,
    api_key_id: uuid.UUID,
    tenant_id: uuid.UUID,
    name: str,
    secret_hash: bytes,
    secret_hint: str,
    scopes: Iterable[str],
    metadata: dict[str, Any],
) -> RowMapping:
    statement = (
        insert(api_keys)
        .values(
            id=api_key_id,
            tenant_id=tenant_id,
            name=name,
            secret_hash=secret_hash,
            secret_hint=secret_hint,
            scopes=list(scopes),
            metadata=metadata,
        )
        .returning(*_PUBLIC_COLUMNS)
    )
    return connection.execute(statement).mappings().one()


def count_active(connection: Connection, tenant_id: uuid.UUID) -> int:
    statement = (
        select(func.count())
        .select_from(api_keys)
        .where(api_keys.c.tenant_id == tenant_id, api_keys.c.revoked_at.is_(None))
    )
    return int(connection.execute(statement).scalar_one())


def get(connection: Connection, tenant_id: uuid.UUID, api_key_id: uuid.UUID) -> RowMapping | None:
    statement = select(*_PUBLIC_COLUMNS).where(api_keys.c.tenant_id == tenant_id, api_keys.c.id == api_key_id)
    return connection.execute(statement).mappings().one_or_none()


def tenant_of(connection: Connection, api_key_id: uuid.UUID) -> uuid.UUID | None:
    statement = select(api_keys.c.tenant_id).where(api_keys.c.id == api_key_id)
    value = connection.execute(statement).scalar_one_or_none()
    return value if value is None else uuid.UUID(str(value))


def find_by_secret_hash(connection: Connection, secret_hash: bytes) -> RowMapping | None:
    statement = select(*_PUBLIC_COLUMNS).where(api_keys.c.secret_hash == secret_hash)
    return connection.execute(statement).mappings().one_or_none()


def touch_last_used(connection: Connection, api_key_id: uuid.UUID) -> None:
    statement = (
        update(api_keys)
        .where(
            api_keys.c.id == api_key_id,
            or_(
                api_keys.c.last_used_at.is_(None),
                api_keys.c.last_used_at < func.now() - LAST_USED_RESOLUTION,
            ),
        )
        .values(last_used_at=func.now())
    )
    connection.execute(statement)


def revoke(connection: Connection, tenant_id: uuid.UUID, api_key_id: uuid.UUID) -> RowMapping | None:
    """Revoke once; revoking a revoked key keeps the first `revoked_at`. None: no such key."""
    statement = (
        update(api_keys)
        .where(api_keys.c.tenant_id == tenant_id, api_keys.c.id == api_key_id)
        .values(revoked_at=func.coalesce(api_keys.c.revoked_at, func.now()))
        .returning(*_PUBLIC_COLUMNS)
    )
    return connection.execute(statement).mappings().one_or_none()


def list_page(connection: Connection, tenant_id: uuid.UUID, page: PageRequest) -> Page[RowMapping]:
    statement = select(*_PUBLIC_COLUMNS).where(api_keys.c.tenant_id == tenant_id)
    return fetch_page(connection, statement, api_keys.c.id, page)
