"""A tenant's billing settings: how the billing run treats late and amended usage.

`GET`/`PUT /v1/account/billing_settings`, `tally tenants settings`. Every change is a new row
(migration 0013), so what applied when stays on record; the latest is in force from the next
billing run on. Setting what is already in force writes nothing. Refusal:
`late_usage_policy_unknown`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id
from tally.adapters.postgres import tenant_settings as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.core.invoicing import LATE_USAGE_POLICY_DEFAULT, LateUsagePolicy, parse_late_usage_policy
from tally.core.rejections import Rejected


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingSettings:
    late_usage_policy: LateUsagePolicy = LATE_USAGE_POLICY_DEFAULT
    # When the settings in force were recorded; None for a tenant that never set any (the defaults).
    recorded_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingSettingsInput:
    late_usage_policy: str


def billing_settings_in(connection: psycopg.Connection[Any], tenant_id: uuid.UUID) -> BillingSettings:
    """The settings in force, read inside the caller's transaction (the billing run's)."""
    row = store.current(connection, tenant_id)
    if row is None:
        return BillingSettings()
    return BillingSettings(late_usage_policy=LateUsagePolicy(row.late_usage_policy), recorded_at=row.recorded_at)


def get_billing_settings(engine: Engine, tenant_id: uuid.UUID) -> BillingSettings:
    with psycopg_transaction(engine) as connection:
        return billing_settings_in(connection, tenant_id)


def set_billing_settings(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, change: BillingSettingsInput
) -> tuple[BillingSettings, bool]:
    """Put `change` in force; answers the settings and whether anything was recorded."""
    policy = parse_late_usage_policy(change.late_usage_policy)
    with psycopg_transaction(engine) as connection:
        if not store.tenant_exists(connection, tenant_id):
            raise Rejected.because("tenant_not_found", "no such tenant")
        # Serialize changes of one tenant's settings, so two identical requests record one row.
        connection.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('tally.billing_settings:' || %s::text, 0))", (tenant_id,)
        )
        current = billing_settings_in(connection, tenant_id)
        if current.recorded_at is not None and current.late_usage_policy is policy:
            return current, False
        store.record(connection, tenant_id, new_id(), policy.value, clock.now())
        return billing_settings_in(connection, tenant_id), True
