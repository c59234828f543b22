"""Edge cases end to end on a test clock and real PostgreSQL: a month-end anchor in a leap year in a
zone with DST, a change scheduled at period end that a cancel supersedes, a change landing exactly
on a period boundary, and a plan version migration at period end after a withdrawn one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from tally.app._subscription_items import PlanChoice
from tally.app._subscription_write import When
from tally.app.advance_test_clock import advance_test_clock
from tally.app.cancel_subscription import Cancellation, cancel_subscription
from tally.app.change_subscription_items import ItemsChange, change_subscription_items
from tally.app.create_subscription import SubscriptionInput, create_subscription
from tally.app.create_test_clock import TestClockInput, create_test_clock
from tally.app.migrate_subscriptions import Migration, migrate_subscriptions
from tally.app.subscription_queries import get_subscription, subscription_billing_events, subscription_scheduled_changes
from tally.app.unschedule_cancel import unschedule_cancel
from tally.app.withdraw_scheduled_change import withdraw_scheduled_change
from tally.bootstrap import Tally
from tally.core.subscriptions import BillingEventKind, SubscriptionStatus
from tests.subscription_support import CATALOG, apply_test_catalog, make_customer, plan_version_id

# Midnight of Jan 31 2028 in New York (a leap year; clocks spring forward on Mar 12).
START = datetime(2028, 1, 31, 5, tzinfo=UTC)
FEB_29 = datetime(2028, 2, 29, 5, tzinfo=UTC)
MAR_31 = datetime(2028, 3, 31, 4, tzinfo=UTC)  # local midnight, now an hour earlier in UTC


def test_a_leap_year_month_end_in_new_york_with_a_superseded_change(tally: Tally, tenant_id: uuid.UUID) -> None:
    apply_test_catalog(tally, tenant_id)
    clock = create_test_clock(tally.engine, tally.clock, tenant_id, TestClockInput(frozen_time=START))
    customer = make_customer(tally, tenant_id, timezone="America/New_York", test_clock_id=clock.id)
    created = create_subscription(
        tally.engine,
        tally.clock,
        tenant_id,
        SubscriptionInput(customer_id=customer, plan=PlanChoice(plan_code="basic")),
    )
    sid = created.row.id
    assert get_subscription(tally.engine, tally.clock, tenant_id, sid).current_period_end == FEB_29

    # An upgrade at period end, then a cancel at period end: the upgrade could never happen, and
    # the cancel withdraws it. Undoing the cancel leaves it withdrawn.
    change_subscription_items(
        tally.engine,
        tally.clock,
        tenant_id,
        sid,
        ItemsChange(plan=PlanChoice(plan_code="pro"), effective=When.PERIOD_END),
    )
    canceled = cancel_subscription(tally.engine, tally.clock, tenant_id, sid, Cancellation(effective=When.PERIOD_END))
    assert [recorded.kind for recorded in canceled.recorded] == ["withdrawn", "cancel_scheduled"]
    unschedule_cancel(tally.engine, tally.clock, tenant_id, sid)
    assert subscription_scheduled_changes(tally.engine, tally.clock, tenant_id, sid).changes == ()

    # Scheduled again, the upgrade lands exactly on the Feb 29 boundary: the new fee starts with a
    # full period and nothing is prorated or credited.
    change_subscription_items(
        tally.engine,
        tally.clock,
        tenant_id,
        sid,
        ItemsChange(plan=PlanChoice(plan_code="pro"), effective=When.PERIOD_END),
    )
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock.id, FEB_29)
    events, _ = subscription_billing_events(tally.engine, tally.clock, tenant_id, sid)
    fees = [event for event in events.events if event.amount is not None]
    assert all(
        event.kind is BillingEventKind.FIXED_FEE and event.proration and event.proration.is_full for event in fees
    )
    assert [(event.service_period.start, event.amount_minor()) for event in fees] == [
        (START, 3000),
        (FEB_29, 9000),
        (FEB_29, 3000),  # three seats of $10
    ]
    # The next period ends at local midnight on Mar 31, an hour earlier in UTC after the DST change.
    assert fees[1].service_period.end == MAR_31
    assert get_subscription(tally.engine, tally.clock, tenant_id, sid).subscription.state.status is (
        SubscriptionStatus.ACTIVE
    )


def test_a_migration_at_period_end_withdrawn_and_run_again(tally: Tally, tenant_id: uuid.UUID) -> None:
    apply_test_catalog(tally, tenant_id)
    first = plan_version_id(tally, tenant_id, "basic")
    clock = create_test_clock(tally.engine, tally.clock, tenant_id, TestClockInput(frozen_time=START))
    customer = make_customer(tally, tenant_id, timezone="America/New_York", test_clock_id=clock.id)
    sid = create_subscription(
        tally.engine,
        tally.clock,
        tenant_id,
        SubscriptionInput(customer_id=customer, plan=PlanChoice(plan_code="basic")),
    ).row.id
    apply_test_catalog(tally, tenant_id, CATALOG.replace("amount: 30}", "amount: 35}", 1))
    second = plan_version_id(tally, tenant_id, "basic")
    migration = Migration(from_plan_version_id=first, to=PlanChoice(plan_version_id=second))
    assert migrate_subscriptions(tally.engine, tally.clock, tenant_id, migration).migrated == (sid,)
    (scheduled,) = subscription_scheduled_changes(tally.engine, tally.clock, tenant_id, sid).changes
    assert (scheduled.kind, scheduled.entry.effective_at, scheduled.plan_version_id) == (
        "items_changed",
        FEB_29,
        second,
    )
    withdraw_scheduled_change(tally.engine, tally.clock, tenant_id, sid, scheduled.sequence)
    assert migrate_subscriptions(tally.engine, tally.clock, tenant_id, migration).migrated == (sid,)
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock.id, MAR_31)
    events, _ = subscription_billing_events(tally.engine, tally.clock, tenant_id, sid)
    fees = [(event.service_period.start, event.amount_minor()) for event in events.events if event.amount is not None]
    # The old version's fee until the boundary, the new one's from it: no proration either side.
    assert fees == [(START, 3000), (FEB_29, 3500), (MAR_31, 3500)]
