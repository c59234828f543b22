"""What the year of billing (tests/scenarios/test_billing_year.py) found, each as its smallest case.

Each was marked xfail(strict=True) until the code that owns it was fixed (the test then passed,
strict turned that into a failure, and the mark came off). All three are fixed; a new finding gets
its own strict xfail case here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from tally.adapters.clock import FixedClock
from tally.adapters.postgres import invoices as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app._subscription_items import PlanChoice
from tally.app._subscription_write import When
from tally.app.advance_test_clock import advance_test_clock
from tally.app.change_subscription_items import ItemsChange, change_subscription_items
from tally.app.create_coupon import CouponInput, create_coupon
from tally.app.finalize_invoice import finalize_invoice
from tally.app.ingest_events import ingest_events
from tally.app.invoice_queries import get_invoice
from tally.app.redeem_coupon import RedemptionInput, redeem_coupon
from tally.app.run_billing import run_billing
from tally.bootstrap import Tally
from tests.invoicing_support import at, calls, customer_on_clock, setup_catalog, subscribe
from tests.subscription_support import apply_test_catalog

FREE_TIER_CATALOG = """
meters:
  - {code: api_calls, event_type: api.call, aggregation: count}
products:
  - {code: api, name: API}
prices:
  - code: calls
    product: api
    model: graduated
    currency: USD
    meter: api_calls
    tiers: [{up_to: 10, unit_price: 0}, {unit_price: 0.25}]
plans:
  - {code: free_tier, name: Free tier, prices: [calls]}
"""


def _draft(tally: Tally, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> store.InvoiceRow:
    with psycopg_transaction(tally.engine) as connection:
        draft = store.draft_of(connection, tenant_id, customer_id, "USD")
    assert draft is not None
    return draft


def test_a_draft_refreshed_with_usage_inside_a_free_tier_shows_the_new_quantity(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    apply_test_catalog(tally, tenant_id, FREE_TIER_CATALOG)
    customer_id, clock_id, external = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, customer_id, "free_tier")
    calls(tally, tenant_id, external, [at(1, 5), at(1, 6), at(1, 7)])
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 1, 6))
    run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=(customer_id,))
    (line,) = get_invoice(tally.engine, tenant_id, _draft(tally, tenant_id, customer_id).id).lines
    assert (line.quantity, line.amount_minor) == (Decimal(3), 0)

    # One more call of January, during the grace period: the draft is refreshed before it is final.
    calls(tally, tenant_id, external, [datetime(2026, 1, 31, 23, tzinfo=UTC)])
    run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=(customer_id,))
    (line,) = get_invoice(tally.engine, tenant_id, _draft(tally, tenant_id, customer_id).id).lines
    assert (line.quantity, line.amount_minor) == (Decimal(4), 0)


def test_an_event_for_an_invoiced_period_is_answered_late(tally: Tally, tenant_id: uuid.UUID) -> None:
    setup_catalog(tally, tenant_id)
    customer_id, clock_id, external = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, customer_id)
    calls(tally, tenant_id, external, [at(1, 5)])
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 2))
    finalize_invoice(tally.engine, tally.clock, tenant_id, _draft(tally, tenant_id, customer_id).id)

    event = {"id": "late-1", "customer": external, "type": "api.call", "timestamp": "2026-01-20T12:00:00+00:00"}
    result = ingest_events(tally.engine, FixedClock(at(2, 10)), tenant_id, [event])
    assert result.accepted == 1
    with psycopg_transaction(tally.engine) as connection:
        flagged = connection.execute("SELECT event_id FROM late_usage WHERE tenant_id = %s", (tenant_id,)).fetchall()
    assert (result.late, flagged) == (1, [("late-1",)])


def test_a_coupon_for_once_discounts_nothing_after_a_later_plan_change(tally: Tally, tenant_id: uuid.UUID) -> None:
    setup_catalog(tally, tenant_id)
    customer_id, clock_id, _ = customer_on_clock(tally, tenant_id, at(1, 1))
    subscription_id = subscribe(tally, tenant_id, customer_id, "basic")
    coupon = create_coupon(
        tally.engine, tally.clock, tenant_id, CouponInput(code="half", duration="once", percent_off=Decimal(50))
    )
    redeem_coupon(tally.engine, tally.clock, tenant_id, RedemptionInput(coupon_id=coupon.id, customer_id=customer_id))
    run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=(customer_id,))
    january = finalize_invoice(tally.engine, tally.clock, tenant_id, _draft(tally, tenant_id, customer_id).id)
    assert (january.subtotal_minor, january.discount_minor) == (3000, -1500)  # once: January's fee

    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 2))
    finalize_invoice(tally.engine, tally.clock, tenant_id, _draft(tally, tenant_id, customer_id).id)
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 15))
    change = ItemsChange(plan=PlanChoice(plan_code="pro"), effective=When.PERIOD_END)
    change_subscription_items(tally.engine, tally.clock, tenant_id, subscription_id, change)
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(3, 1))
    march = _draft(tally, tenant_id, customer_id)
    assert (march.subtotal_minor, march.discount_minor) == (9000, 0)  # March's pro fee, in full
