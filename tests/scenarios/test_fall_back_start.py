"""A subscription that starts in the second pass of a repeated hour, billed for five months on a test
clock. New York falls back on 2026-11-01: 01:30 happens at 05:30 UTC (EDT) and again at 06:30 UTC
(EST); the customer subscribes at the second one. The first period starts at that very moment and
its fee is charged in full; every later period starts at 01:30 local (06:30 UTC in winter, 05:30
UTC once clocks spring forward on 2027-03-14). An upgrade in the period that holds the spring-forward
is prorated over that period's real length, an hour short. Each month the clock's advance runs the
billing run, the draft is finalized, and the fee lines on the invoices are exactly the subscription's
fee events: same service periods, same amounts rounded once.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from fractions import Fraction

from tally.adapters.postgres import invoices as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app._subscription_items import PlanChoice
from tally.app.advance_test_clock import advance_test_clock
from tally.app.change_subscription_items import ItemsChange, change_subscription_items
from tally.app.create_test_clock import TestClockInput, create_test_clock
from tally.app.finalize_invoice import finalize_invoice
from tally.app.invoice_queries import get_invoice
from tally.app.run_billing import run_billing
from tally.app.subscription_queries import get_subscription, subscription_billing_events
from tally.bootstrap import Tally
from tally.core.invoicing.lines import LineKind
from tally.core.subscriptions import BillingEventKind
from tests.invoicing_support import calls, external_id, setup_catalog, subscribe
from tests.subscription_support import make_customer


def utc(year: int, month: int, day: int, hour: int, minute: int = 30) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


START = utc(2026, 11, 1, 6)  # the second 01:30 of the night, EST
FIRST_PASS = utc(2026, 11, 1, 5)  # the first 01:30, EDT: an hour earlier, and not the start
# 01:30 local on the 1st of each month: EST until March, EDT from April.
BOUNDARIES = [START, utc(2026, 12, 1, 6), utc(2027, 1, 1, 6), utc(2027, 2, 1, 6), utc(2027, 3, 1, 6)]
BOUNDARIES += [utc(2027, 4, 1, 5)]
UPGRADE = utc(2027, 3, 16, 5)  # 01:30 EDT: 16 whole days before April 1, after the spring-forward
HOUR_SECONDS = 3_600


def _finalize_draft(tally: Tally, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> uuid.UUID:
    with psycopg_transaction(tally.engine) as connection:
        draft = store.draft_of(connection, tenant_id, customer_id, "USD")
    assert draft is not None
    finalize_invoice(tally.engine, tally.clock, tenant_id, draft.id)
    return draft.id


def test_a_start_in_the_second_pass_of_a_repeated_hour_billed_for_five_months(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    setup_catalog(tally, tenant_id)
    clock = create_test_clock(tally.engine, tally.clock, tenant_id, TestClockInput(frozen_time=START))
    customer_id = make_customer(tally, tenant_id, timezone="America/New_York", test_clock_id=clock.id)
    external = external_id(tally, tenant_id, customer_id)
    subscription_id = subscribe(tally, tenant_id, customer_id, "basic")

    # The first period begins at the start, not at the first pass an hour before it.
    assert get_subscription(tally.engine, tally.clock, tenant_id, subscription_id).current_period_end == BOUNDARIES[1]
    events, _ = subscription_billing_events(tally.engine, tally.clock, tenant_id, subscription_id)
    (first,) = [event for event in events.events if event.amount is not None]
    assert (first.kind, first.service_period.start, first.service_period.end) == (
        BillingEventKind.FIXED_FEE,
        START,
        BOUNDARIES[1],
    )
    assert first.service_period.start != FIRST_PASS
    assert first.proration is not None and first.proration.is_full and first.amount_minor() == 3000

    run_billing(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=(customer_id,))
    invoice_ids = [_finalize_draft(tally, tenant_id, customer_id)]
    for previous, boundary in itertools.pairwise(BOUNDARIES):
        calls(tally, tenant_id, external, [previous.replace(hour=15)])  # one call in each period
        if boundary == BOUNDARIES[-1]:
            advance_test_clock(tally.engine, tally.clock, tenant_id, clock.id, UPGRADE)
            change_subscription_items(
                tally.engine, tally.clock, tenant_id, subscription_id, ItemsChange(plan=PlanChoice(plan_code="pro"))
            )
        advance_test_clock(tally.engine, tally.clock, tenant_id, clock.id, boundary)
        invoice_ids.append(_finalize_draft(tally, tenant_id, customer_id))

    events, _ = subscription_billing_events(tally.engine, tally.clock, tenant_id, subscription_id)
    fees = [event for event in events.events if event.amount is not None]
    # The periods of the monthly fees tile from the start: 01:30 local on the 1st, whatever the offset.
    basic_periods = [event.period for event in fees if event.kind is BillingEventKind.FIXED_FEE and event.quantity]
    assert [(period.start, period.end) for period in basic_periods[:5]] == list(itertools.pairwise(BOUNDARIES))
    # March is an hour short; the upgrade on the 16th at 01:30 EDT leaves 16 whole days of it.
    share = Fraction(16 * 24 * HOUR_SECONDS, (31 * 24 - 1) * HOUR_SECONDS)
    at_upgrade = [event for event in fees if event.due_at == UPGRADE]
    assert [(event.kind, event.proration.exact_fraction if event.proration else None) for event in at_upgrade] == [
        (BillingEventKind.FIXED_FEE_CREDIT, share),
        (BillingEventKind.FIXED_FEE, share),
    ]
    assert [event.amount_minor() for event in at_upgrade] == [-1550, 4651]  # $30 × 384/743, $90 × 384/743

    # The invoices' fee lines are the fee events, one for one, on the invoice of the month they fell due.
    views = [get_invoice(tally.engine, tenant_id, invoice_id) for invoice_id in invoice_ids]
    fee_kinds = (LineKind.FIXED_FEE, LineKind.FIXED_FEE_CREDIT)
    lines = [
        (view_index, line.key.kind.value, line.key.service_start, line.key.service_end, line.amount_minor)
        for view_index, view in enumerate(views)
        for line in view.lines
        if line.key.kind in fee_kinds
    ]
    expected = [
        (
            # Invoice k was finalized at BOUNDARIES[k]: it holds what fell due after the one before.
            next(index for index, boundary in enumerate(BOUNDARIES) if event.due_at <= boundary),
            event.kind.value,
            event.service_period.start,
            event.service_period.end,
            event.amount_minor(),
        )
        for event in fees
    ]
    assert sorted(lines) == sorted(expected)
    assert lines[0] == (0, "fixed_fee", START, BOUNDARIES[1], 3000)
    for view in views:
        assert view.invoice.total_minor == sum(line.amount_minor for line in view.lines)
