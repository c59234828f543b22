"""A year of one subscription on a test clock, in seconds: created on a month-end anchor, advanced
month by month, upgraded mid-period, paused and resumed, canceled at period end. At every step the
derived state, the cached state the billing run will scan, the periods and the billing events are
checked; at the end, every step's events are exactly the final events due by that step (invoicing
can bill each step's difference and never revise what it billed)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

from tally.adapters.postgres import subscriptions as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app._subscription_items import PlanChoice
from tally.app._subscription_write import When
from tally.app.advance_test_clock import advance_test_clock
from tally.app.cancel_subscription import Cancellation, cancel_subscription
from tally.app.change_subscription_items import ItemsChange, change_subscription_items
from tally.app.create_subscription import SubscriptionInput, create_subscription
from tally.app.create_test_clock import TestClockInput, create_test_clock
from tally.app.pause_subscription import pause_subscription
from tally.app.resume_subscription import resume_subscription
from tally.app.subscription_queries import get_subscription, subscription_billing_events
from tally.bootstrap import Tally
from tally.core.subscriptions import BillingEvent, BillingEventKind, SubscriptionStatus
from tests.subscription_support import apply_test_catalog, make_customer


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, tzinfo=UTC)


# Month-end anchor on Jan 31: Feb 28, Mar 31, Apr 30, May 31 … (never drifting to the 28th).
BOUNDARIES = [at(1, 31), at(2, 28), at(3, 31), at(4, 30), at(5, 31), at(6, 30), at(7, 31), at(8, 31), at(9, 30)]
BOUNDARIES += [at(10, 31), at(11, 30), at(12, 31)]


def _signed(event: BillingEvent) -> Fraction:
    """The event's exact amount as a fraction (from its proration, not the 60-digit decimal)."""
    if event.proration is None or event.unit_amount is None or event.quantity is None:
        return Fraction(0)
    amount = Fraction(event.unit_amount) * event.quantity * event.proration.exact_fraction
    return -amount if event.kind is BillingEventKind.FIXED_FEE_CREDIT else amount


def test_a_year_of_billing_on_a_test_clock(tally: Tally, tenant_id: uuid.UUID) -> None:
    apply_test_catalog(tally, tenant_id)
    clock = create_test_clock(tally.engine, tally.clock, tenant_id, TestClockInput(frozen_time=at(1, 31)))
    customer = make_customer(tally, tenant_id, test_clock_id=clock.id)
    created = create_subscription(
        tally.engine,
        tally.clock,
        tenant_id,
        SubscriptionInput(customer_id=customer, plan=PlanChoice(plan_code="basic")),
    )
    sid = created.row.id
    snapshots: list[tuple[datetime, tuple[BillingEvent, ...]]] = []

    def advance(moment: datetime) -> None:
        advance_test_clock(tally.engine, tally.clock, tenant_id, clock.id, moment)

    def check(moment: datetime, status: SubscriptionStatus) -> tuple[BillingEvent, ...]:
        """State and events at the clock's time; the cached row agrees with what is derived."""
        view = get_subscription(tally.engine, tally.clock, tenant_id, sid)
        assert view.subscription.as_of == moment
        assert view.subscription.state.status is status, moment
        events, _ = subscription_billing_events(tally.engine, tally.clock, tenant_id, sid)
        assert events.through == moment
        with psycopg_transaction(tally.engine) as connection:
            row = store.get_subscription(connection, tenant_id, sid)
        assert row is not None
        # Refreshed by the advance's hook (or by the write at this time).
        assert (row.status_as_of, row.status, row.next_due_at) == (moment, status.value, events.next_due_at), moment
        snapshots.append((moment, events.events))
        return events.events

    def due_at(events: tuple[BillingEvent, ...], moment: datetime) -> list[tuple[str, Fraction]]:
        return [(event.kind.value, _signed(event)) for event in events if event.due_at == moment]

    # January 31 to April: a full basic fee at each month-end boundary, usage billed in arrears.
    events = check(at(1, 31), SubscriptionStatus.ACTIVE)
    assert due_at(events, at(1, 31)) == [("fixed_fee", Fraction(30))]
    for boundary in BOUNDARIES[1:3]:
        advance(boundary)
        events = check(boundary, SubscriptionStatus.ACTIVE)
        assert due_at(events, boundary) == [("fixed_fee", Fraction(30)), ("usage", Fraction(0))]

    # April 15, halfway through [Mar 31, Apr 30): upgrade to pro now, prorated over 15 of 30 days.
    advance(at(4, 15))
    change_subscription_items(tally.engine, tally.clock, tenant_id, sid, ItemsChange(plan=PlanChoice(plan_code="pro")))
    events = check(at(4, 15), SubscriptionStatus.ACTIVE)
    assert due_at(events, at(4, 15)) == [
        ("fixed_fee_credit", Fraction(-15)),
        ("fixed_fee", Fraction(45)),  # pro, 90 × 15/30
        ("fixed_fee", Fraction(15)),  # 3 seats × 10 × 15/30
    ]
    # The usage window of basic's tokens price continues: the same price is in both plans.
    for boundary in BOUNDARIES[3:6]:
        advance(boundary)
        events = check(boundary, SubscriptionStatus.ACTIVE)
        assert [kind for kind, _ in due_at(events, boundary)] == ["fixed_fee", "fixed_fee", "usage"]

    # July 10: pause (21 of 31 days credited); August 20: resume (11 of 31 days charged).
    advance(at(7, 10))
    pause_subscription(tally.engine, tally.clock, tenant_id, sid)
    events = check(at(7, 10), SubscriptionStatus.PAUSED)
    paused_at = due_at(events, at(7, 10))
    assert sorted(amount for kind, amount in paused_at if kind == "fixed_fee_credit") == [
        Fraction(-90 * 21, 31),
        Fraction(-30 * 21, 31),
    ]
    assert [kind for kind, _ in paused_at].count("usage") == 1  # the usage window closes at the pause
    advance(at(7, 31))
    events = check(at(7, 31), SubscriptionStatus.PAUSED)
    assert all(amount == 0 for _, amount in due_at(events, at(7, 31)))  # nothing charged while paused
    advance(at(8, 20))
    resume_subscription(tally.engine, tally.clock, tenant_id, sid)
    events = check(at(8, 20), SubscriptionStatus.ACTIVE)
    assert sorted(amount for kind, amount in due_at(events, at(8, 20)) if kind == "fixed_fee") == [
        Fraction(30 * 11, 31),
        Fraction(90 * 11, 31),
    ]
    assert [kind for kind, _ in due_at(events, at(8, 20))].count("paused") == 3  # one window per price

    # Months go by; November 5: cancel at period end (November 30).
    for boundary in BOUNDARIES[7:10]:
        advance(boundary)
        check(boundary, SubscriptionStatus.ACTIVE)
    advance(at(11, 5))
    canceled = cancel_subscription(tally.engine, tally.clock, tenant_id, sid, Cancellation(effective=When.PERIOD_END))
    assert canceled.state.cancel_at == at(11, 30)
    check(at(11, 5), SubscriptionStatus.CANCELED)
    advance(at(11, 30))
    events = check(at(11, 30), SubscriptionStatus.ENDED)
    assert [kind for kind, _ in due_at(events, at(11, 30))] == ["usage"]  # the last window, no new fee
    advance(at(12, 31))
    final = check(at(12, 31), SubscriptionStatus.ENDED)
    assert final == events  # nothing after the end

    with psycopg_transaction(tally.engine) as connection:
        row = store.get_subscription(connection, tenant_id, sid)
    assert row is not None and (row.status, row.ended_at, row.next_due_at) == ("ended", at(11, 30), None)

    # What the year billed in fixed fees, exactly: 3 basic months, the April proration, 6 full pro
    # months (May, June, July's before the pause, September, October, November), less July's
    # unused 21 days, plus August's 11 days after the resume.
    total = sum((_signed(event) for event in final), Fraction(0))
    assert total == 90 - 15 + 60 + 6 * 120 - Fraction(120 * 21, 31) + Fraction(120 * 11, 31)
    assert sum((event.amount or Decimal(0) for event in final), Decimal(0)).quantize(Decimal("0.01")) == Decimal(
        "816.29"
    )
    # Usage windows tile the time the tokens price was billable: Jan 31 → Jul 10, Aug 20 → Nov 30.
    usage = [event.service_period for event in final if event.kind is BillingEventKind.USAGE]
    assert usage[0].start == at(1, 31) and usage[-1].end == at(11, 30)
    gaps = [(left.end, right.start) for left, right in itertools.pairwise(usage) if left.end != right.start]
    assert gaps == [(at(7, 10), at(8, 20))]
    # Prefix stability: each step saw exactly the final events due by its time.
    for moment, seen in snapshots:
        assert seen == tuple(event for event in final if event.due_at <= moment), moment
