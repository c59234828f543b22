"""Helpers for invoicing tests: a catalog with a fixed fee and a usage price, customers on test
clocks, usage events, and ledger reads (receivables, balances per account)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from tally.adapters.postgres.connections import psycopg_transaction
from tally.app._subscription_items import PlanChoice
from tally.app.create_subscription import SubscriptionInput, create_subscription
from tally.app.create_test_clock import TestClockInput, create_test_clock
from tally.bootstrap import Tally
from tally.core.metering.aggregation import MeteredEvent
from tests.metering_support import write_events
from tests.subscription_support import apply_test_catalog, make_customer

CATALOG = """
meters:
  - {code: api_calls, event_type: api.call, aggregation: count}
products:
  - {code: platform, name: Platform}
  - {code: api, name: API}
prices:
  - {code: basic_fee, product: platform, model: flat_fee, currency: USD, amount: 30}
  - {code: pro_fee, product: platform, model: flat_fee, currency: USD, amount: 90}
  - {code: calls, product: api, model: per_unit, currency: USD, meter: api_calls, unit_price: 0.01}
plans:
  - code: basic
    name: Basic
    prices: [basic_fee, calls]
  - code: pro
    name: Pro
    prices: [pro_fee, calls]
"""


def at(month: int, day: int, hour: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def setup_catalog(tally: Tally, tenant_id: uuid.UUID) -> None:
    apply_test_catalog(tally, tenant_id, CATALOG)


def customer_on_clock(tally: Tally, tenant_id: uuid.UUID, start: datetime) -> tuple[uuid.UUID, uuid.UUID, str]:
    """(customer id, test clock id, external id) for a USD customer on a new clock at `start`."""
    clock = create_test_clock(tally.engine, tally.clock, tenant_id, TestClockInput(frozen_time=start))
    customer_id = make_customer(tally, tenant_id, test_clock_id=clock.id)
    return customer_id, clock.id, external_id(tally, tenant_id, customer_id)


def external_id(tally: Tally, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> str:
    with psycopg_transaction(tally.engine) as connection:
        row = connection.execute(
            "SELECT external_id FROM customers WHERE tenant_id = %s AND id = %s", (tenant_id, customer_id)
        ).fetchone()
    assert row is not None
    return str(row[0])


def subscribe(
    tally: Tally,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    plan: str = "basic",
    quantities: Mapping[uuid.UUID, int] | None = None,
) -> uuid.UUID:
    """`customer_id` on the latest version of `plan`; `quantities`: seats of its fixed fees by price id."""
    created = create_subscription(
        tally.engine,
        tally.clock,
        tenant_id,
        SubscriptionInput(customer_id=customer_id, plan=PlanChoice(plan_code=plan, quantities=quantities or {})),
    )
    return created.row.id


def calls(tally: Tally, tenant_id: uuid.UUID, customer: str, times: list[datetime]) -> list[str]:
    """One `api.call` event at each time; returns their ids."""
    events = [
        MeteredEvent(
            event_id=f"e-{uuid.uuid4().hex}", customer=customer, type="api.call", timestamp=moment, properties={}
        )
        for moment in times
    ]
    write_events(tally.engine, tenant_id, events)
    return [event.event_id for event in events]


def balance(tally: Tally, tenant_id: uuid.UUID, code: str, customer: str | None = None, unit: str = "USD") -> int:
    """An account's posted balance on its normal side (0 when it does not exist)."""
    with psycopg_transaction(tally.engine) as connection:
        row = connection.execute(
            """SELECT CASE WHEN normal_balance = 'credit' THEN credits_posted - debits_posted
                           ELSE debits_posted - credits_posted END
               FROM ledger_accounts WHERE tenant_id = %s AND code = %s AND unit_code = %s
                    AND coalesce(customer_id, '') = coalesce(%s, '')""",
            (tenant_id, code, unit, customer),
        ).fetchone()
    return int(row[0]) if row else 0


def count_rows(tally: Tally, tenant_id: uuid.UUID, table: str) -> int:
    assert table in {"invoices", "invoice_lines", "ledger_transactions", "invoice_payments", "credit_notes"}
    with psycopg_transaction(tally.engine) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %s", (tenant_id,)).fetchone()
    assert row is not None
    return int(row[0])
