"""A small catalog for subscription tests, applied through catalog-as-code, and lookups into it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from tally.adapters.clock import FixedClock
from tally.adapters.postgres import subscriptions as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.apply_catalog import apply_catalog
from tally.app.catalog_files import parse_catalog_text
from tally.app.create_customer import CustomerInput, create_customer
from tally.bootstrap import Tally

CATALOG = """
meters:
  - {code: tokens, event_type: llm.completion, aggregation: sum, value_property: tokens}
products:
  - {code: platform, name: Platform}
prices:
  - {code: basic_monthly, product: platform, model: flat_fee, currency: USD, amount: 30}
  - {code: pro_monthly, product: platform, model: flat_fee, currency: USD, amount: 90}
  - {code: seat, product: platform, model: per_unit, currency: USD, unit_price: 10, billing_timing: in_advance}
  - {code: tokens, product: platform, model: per_unit, currency: USD, meter: tokens, unit_price: 0.000002}
  - {code: pro_yearly, product: platform, model: flat_fee, currency: USD, amount: 900, interval: {unit: year}}
  - {code: setup, product: platform, model: flat_fee, currency: USD, amount: 100, interval: null}
  - {code: basic_eur, product: platform, model: flat_fee, currency: EUR, amount: 30}
plans:
  - code: basic
    name: Basic
    prices: [basic_monthly, tokens]
  - code: pro
    name: Pro
    trial_days: 14
    prices: [pro_monthly, {price: seat, quantity: 3}, tokens]
  - code: annual
    name: Annual
    prices: [pro_yearly, tokens]
"""

CATALOG_CLOCK = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))


def apply_test_catalog(tally: Tally, tenant_id: uuid.UUID, text: str = CATALOG) -> None:
    apply_catalog(tally.engine, CATALOG_CLOCK, tenant_id, [parse_catalog_text("catalog.yaml", text)])


def plan_version_id(tally: Tally, tenant_id: uuid.UUID, plan: str, version: int | None = None) -> uuid.UUID:
    with psycopg_transaction(tally.engine) as connection:
        found = store.plan_version_by_code(connection, tenant_id, plan, version)
    assert found is not None, plan
    return found.id


def price_id(tally: Tally, tenant_id: uuid.UUID, code: str) -> uuid.UUID:
    with psycopg_transaction(tally.engine) as connection:
        row = connection.execute(
            "SELECT id FROM prices WHERE tenant_id = %s AND code = %s AND archived_at IS NULL", (tenant_id, code)
        ).fetchone()
    assert row is not None, code
    return uuid.UUID(str(row[0]))


def make_customer(
    tally: Tally,
    tenant_id: uuid.UUID,
    *,
    currency: str | None = "USD",
    timezone: str = "UTC",
    test_clock_id: uuid.UUID | None = None,
) -> uuid.UUID:
    customer = create_customer(
        tally.engine,
        tally.clock,
        tenant_id,
        CustomerInput(
            external_id=f"c-{uuid.uuid4().hex[:10]}", currency=currency, timezone=timezone, test_clock_id=test_clock_id
        ),
    )
    return customer.id
