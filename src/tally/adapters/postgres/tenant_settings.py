"""A tenant's billing settings in PostgreSQL (migration 0013): one row per change, the latest wins."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

Connection = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingSettingsRow:
    late_usage_policy: str
    recorded_at: datetime


def current(connection: Connection, tenant_id: uuid.UUID) -> BillingSettingsRow | None:
    """The settings in force (None: the tenant never set any, the defaults apply)."""
    row = connection.execute(
        """SELECT late_usage_policy, recorded_at FROM tenant_billing_settings
           WHERE tenant_id = %s ORDER BY recorded_at DESC, id DESC LIMIT 1""",
        (tenant_id,),
    ).fetchone()
    return None if row is None else BillingSettingsRow(late_usage_policy=row[0], recorded_at=row[1])


def record(
    connection: Connection, tenant_id: uuid.UUID, setting_id: uuid.UUID, late_usage_policy: str, now: datetime
) -> None:
    connection.execute(
        """INSERT INTO tenant_billing_settings (id, tenant_id, late_usage_policy, recorded_at)
           VALUES (%s, %s, %s, %s)""",
        (setting_id, tenant_id, late_usage_policy, now),
    )


def tenant_exists(connection: Connection, tenant_id: uuid.UUID) -> bool:
    return connection.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant_id,)).fetchone() is not None
