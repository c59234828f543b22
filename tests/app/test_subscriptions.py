"""Subscriptions on real PostgreSQL: created from plan versions and prices, changed, paused,
canceled, migrated; the append-only timeline; concurrency; the test clock hook."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import psycopg
import pytest

from tally.adapters.clock import FixedClock
from tally.adapters.pagination import PageRequest
from tally.adapters.postgres import subscriptions as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app._subscription_items import PlanChoice, PriceChoice
from tally.app._subscription_write import When
from tally.app.advance_test_clock import advance_test_clock
from tally.app.cancel_subscription import Cancellation, cancel_subscription
from tally.app.change_subscription_items import ItemsChange, change_subscription_items
from tally.app.change_subscription_quantity import QuantityChange, change_subscription_quantity
from tally.app.create_plan_version import PlanVersionInput, create_plan_version
from tally.app.create_price_override import OverrideInput, create_price_override
from tally.app.create_subscription import SubscriptionInput, create_subscription
from tally.app.create_test_clock import TestClockInput, create_test_clock
from tally.app.migrate_subscriptions import Migration, migrate_subscriptions
from tally.app.pause_subscription import pause_subscription
from tally.app.resume_subscription import resume_subscription
from tally.app.subscription_queries import (
    get_subscription,
    list_subscriptions,
    subscription_billing_events,
    subscription_timeline,
)
from tally.app.unschedule_cancel import unschedule_cancel
from tally.bootstrap import Tally
from tally.core.rejections import Rejected
from tally.core.subscriptions import BillingAnchor, BillingEventKind, ItemKind, SubscriptionStatus, Withdrawn
from tally.core.subscriptions.cycles import AnchorKind
from tests.subscription_support import (
    CATALOG,
    apply_test_catalog,
    make_customer,
    plan_version_id,
    price_id,
)

JAN = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 1, 15, tzinfo=UTC)
CLOCK = FixedClock(NOW)


@pytest.fixture
def catalog(tally: Tally, tenant_id: uuid.UUID) -> None:
    apply_test_catalog(tally, tenant_id)


def _code(call: Any) -> str:
    with pytest.raises(Rejected) as raised:
        call()
    return raised.value.rejection.code


def _basic(tally: Tally, tenant_id: uuid.UUID, customer_id: uuid.UUID, **fields: Any) -> Any:
    plan = PlanChoice(plan_code="basic")
    return create_subscription(
        tally.engine, CLOCK, tenant_id, SubscriptionInput(customer_id=customer_id, plan=plan, **fields)
    )


def test_a_plan_version_becomes_items_with_its_trial_and_the_customers_zone(
    tally: Tally, tenant_id: uuid.UUID, catalog: None
) -> None:
    customer = make_customer(tally, tenant_id, timezone="Europe/Berlin")
    created = create_subscription(
        tally.engine, CLOCK, tenant_id, SubscriptionInput(customer_id=customer, plan=PlanChoice(plan_code="pro"))
    )
    started = created.timeline.history.started
    assert started.effective_at == NOW
    assert started.timezone == "Europe/Berlin"
    assert started.trial_end == datetime(2026, 1, 29, tzinfo=UTC)
    kinds = [(item.kind, item.unit_amount, item.quantity) for item in started.items]
    assert kinds == [
        (ItemKind.FIXED, Decimal(90), 1),
        (ItemKind.FIXED, Decimal(10), 3),
        (ItemKind.USAGE, None, 1),
    ]
    assert created.state.status is SubscriptionStatus.TRIALING
    assert created.row.status == "trialing"
    assert created.row.plan_version_id == plan_version_id(tally, tenant_id, "pro")
    assert created.row.next_due_at == datetime(2026, 1, 29, tzinfo=UTC)  # the trial ends: fees start
    (entry,) = subscription_timeline(tally.engine, tenant_id, created.row.id)
    assert entry.kind == "started"
    assert entry.origins[started.items[0].price_id].price_code == "pro_monthly"
    # No trial when asked for none; an explicit calendar anchor.
    plain = create_subscription(
        tally.engine,
        CLOCK,
        tenant_id,
        SubscriptionInput(
            customer_id=customer,
            plan=PlanChoice(plan_code="pro"),
            trial_days=0,
            anchor=BillingAnchor(AnchorKind.CALENDAR),
        ),
    )
    assert plain.state.status is SubscriptionStatus.ACTIVE
    events, _ = subscription_billing_events(tally.engine, CLOCK, tenant_id, plain.row.id)
    fees = [event for event in events.events if event.kind is BillingEventKind.FIXED_FEE]
    # A calendar anchor in Berlin: the stub runs to Feb 1 00:00 local time.
    assert {event.service_period.end for event in fees} == {datetime(2026, 1, 31, 23, tzinfo=UTC)}


def test_explicit_prices_and_the_rejections_of_creating(tally: Tally, tenant_id: uuid.UUID, catalog: None) -> None:
    customer = make_customer(tally, tenant_id)
    seat = price_id(tally, tenant_id, "seat")
    created = create_subscription(
        tally.engine,
        CLOCK,
        tenant_id,
        SubscriptionInput(
            customer_id=customer,
            prices=(PriceChoice(price_id(tally, tenant_id, "basic_monthly")), PriceChoice(seat, 5)),
            start_at=JAN,
        ),
    )
    assert created.row.plan_version_id is None
    assert [item.quantity for item in created.state.items] == [1, 5]
    events, _ = subscription_billing_events(tally.engine, CLOCK, tenant_id, created.row.id)
    assert sum(event.amount or 0 for event in events.events) == Decimal(80)

    def create(**fields: Any) -> Any:
        return lambda: create_subscription(tally.engine, CLOCK, tenant_id, SubscriptionInput(**fields))

    eur = price_id(tally, tenant_id, "basic_eur")
    assert _code(create(customer_id=customer, prices=(PriceChoice(eur),))) == "price_currency_must_match_customer"
    setup = price_id(tally, tenant_id, "setup")
    assert _code(create(customer_id=customer, prices=(PriceChoice(setup),))) == "price_must_be_recurring"
    tokens = price_id(tally, tenant_id, "tokens")
    assert _code(create(customer_id=customer, prices=(PriceChoice(tokens, 2),))) == "quantity_applies_to_fixed_fees"
    assert _code(create(customer_id=customer, prices=(PriceChoice(uuid.uuid4()),))) == "price_not_found"
    assert _code(create(customer_id=uuid.uuid4(), prices=(PriceChoice(eur),))) == "customer_not_found"
    assert _code(create(customer_id=customer)) == "items_or_plan_required"
    assert _code(create(customer_id=customer, plan=PlanChoice(plan_code="nope"))) == "plan_version_not_found"
    assert _code(create(customer_id=customer, plan=PlanChoice(plan_code="basic"), trial_days=-1)) == (
        "trial_days_out_of_range"
    )
    no_currency = make_customer(tally, tenant_id, currency=None)
    assert _code(create(customer_id=no_currency, plan=PlanChoice(plan_code="basic"))) == "customer_currency_required"
    draft = create_plan_version(tally.engine, CLOCK, tenant_id, "basic", PlanVersionInput(items=()))
    assert _code(create(customer_id=customer, plan=PlanChoice(plan_version_id=draft.id))) == (
        "plan_version_not_published"
    )


def test_an_immediate_upgrade_prorates_and_a_change_at_period_end_does_not(
    tally: Tally, tenant_id: uuid.UUID, catalog: None
) -> None:
    customer = make_customer(tally, tenant_id)
    created = _basic(tally, tenant_id, customer, start_at=JAN)
    upgraded = change_subscription_items(
        tally.engine, CLOCK, tenant_id, created.row.id, ItemsChange(plan=PlanChoice(plan_code="pro"))
    )
    assert upgraded.state.status is SubscriptionStatus.ACTIVE
    events, _ = subscription_billing_events(tally.engine, CLOCK, tenant_id, created.row.id)
    charged = [
        (event.kind, event.unit_amount, event.quantity, event.proration.exact_fraction, event.amount_minor())
        for event in events.events
        if event.proration is not None
    ]
    # Jan 1 → Feb 1 is 31 days; the change on Jan 15 leaves 17 days.
    left = Fraction(17 * 86400, 31 * 86400)
    assert charged == [
        (BillingEventKind.FIXED_FEE, Decimal(30), 1, 1, 3000),
        (BillingEventKind.FIXED_FEE_CREDIT, Decimal(30), 1, left, -1645),
        (BillingEventKind.FIXED_FEE, Decimal(90), 1, left, 4935),
        (BillingEventKind.FIXED_FEE, Decimal(10), 3, left, 1645),
    ]
    # Downgrade at period end: effective Feb 1, no proration; the seats were 3 and stay 3 (carried).
    down = change_subscription_items(
        tally.engine,
        CLOCK,
        tenant_id,
        created.row.id,
        ItemsChange(prices=(PriceChoice(price_id(tally, tenant_id, "seat")),), effective=When.PERIOD_END),
    )
    assert down.entries[-1].entry.effective_at == datetime(2026, 2, 1, tzinfo=UTC)
    february = subscription_billing_events(
        tally.engine, CLOCK, tenant_id, created.row.id, through=datetime(2026, 2, 1, tzinfo=UTC)
    )[0]
    due_feb = [(event.price_id, event.quantity, event.amount) for event in february.events if event.due_at.month == 2]
    assert [(quantity, amount) for _, quantity, amount in due_feb if amount is not None] == [(3, Decimal(30))]


def test_quantities_pause_resume_cancel_and_undo(tally: Tally, tenant_id: uuid.UUID, catalog: None) -> None:
    customer = make_customer(tally, tenant_id)
    seat = price_id(tally, tenant_id, "seat")
    created = create_subscription(
        tally.engine,
        CLOCK,
        tenant_id,
        SubscriptionInput(customer_id=customer, prices=(PriceChoice(seat, 2),), start_at=JAN),
    )
    sid = created.row.id
    changed = change_subscription_quantity(
        tally.engine, CLOCK, tenant_id, sid, QuantityChange(price_id=seat, quantity=4)
    )
    assert changed.state.items[0].quantity == 4
    unknown = price_id(tally, tenant_id, "pro_monthly")
    assert (
        _code(
            lambda: change_subscription_quantity(
                tally.engine, CLOCK, tenant_id, sid, QuantityChange(price_id=unknown, quantity=1)
            )
        )
        == "price_not_in_subscription"
    )
    paused = pause_subscription(tally.engine, CLOCK, tenant_id, sid)
    assert paused.state.status is SubscriptionStatus.PAUSED
    assert _code(lambda: pause_subscription(tally.engine, CLOCK, tenant_id, sid)) == "subscription_already_paused"
    later = FixedClock(NOW + timedelta(days=5))
    resumed = resume_subscription(tally.engine, later, tenant_id, sid)
    assert resumed.state.status is SubscriptionStatus.ACTIVE
    scheduled = cancel_subscription(tally.engine, later, tenant_id, sid, Cancellation(effective=When.PERIOD_END))
    assert scheduled.state.status is SubscriptionStatus.CANCELED
    assert scheduled.state.cancel_at == datetime(2026, 2, 1, tzinfo=UTC)
    undone = unschedule_cancel(tally.engine, later, tenant_id, sid)
    assert undone.state.status is SubscriptionStatus.ACTIVE
    assert _code(lambda: unschedule_cancel(tally.engine, later, tenant_id, sid)) == "cancel_not_scheduled"
    ended = cancel_subscription(tally.engine, later, tenant_id, sid, Cancellation())
    assert ended.state.status is SubscriptionStatus.ENDED
    assert ended.row.status == "ended" and ended.row.ended_at == NOW + timedelta(days=5)
    assert ended.row.next_due_at is None
    assert _code(lambda: pause_subscription(tally.engine, later, tenant_id, sid)) == "change_dated_after_end"
    assert (
        _code(
            lambda: change_subscription_items(
                tally.engine, later, tenant_id, sid, ItemsChange(prices=(PriceChoice(seat),), effective=When.PERIOD_END)
            )
        )
        == "change_dated_after_end"
    )
    before_start = datetime(2025, 12, 1, tzinfo=UTC)
    assert _code(lambda: pause_subscription(tally.engine, CLOCK, tenant_id, sid, before_start)) == (
        "change_dated_before_start"
    )
    kinds = [entry.kind for entry in subscription_timeline(tally.engine, tenant_id, sid)]
    assert kinds == [
        "started",
        "quantity_changed",
        "paused",
        "resumed",
        "cancel_scheduled",
        "cancel_unscheduled",
        "canceled",
    ]
    view = get_subscription(tally.engine, later, tenant_id, sid)
    assert view.current_period_end is None and view.subscription.state.status is SubscriptionStatus.ENDED
    listed = list_subscriptions(tally.engine, CLOCK, tenant_id, PageRequest(), customer_id=customer)
    assert [item.subscription.row.id for item in listed.items] == [sid]
    assert _code(lambda: get_subscription(tally.engine, CLOCK, tenant_id, uuid.uuid4())) == "subscription_not_found"


def test_the_timeline_is_append_only_in_the_database(tally: Tally, tenant_id: uuid.UUID, catalog: None) -> None:
    created = _basic(tally, tenant_id, make_customer(tally, tenant_id))
    for statement in (
        "UPDATE subscription_timeline SET effective_at = now() WHERE subscription_id = %s",
        "DELETE FROM subscription_timeline WHERE subscription_id = %s",
    ):
        with pytest.raises(psycopg.errors.RestrictViolation), psycopg_transaction(tally.engine) as connection:
            connection.execute(statement, (created.row.id,))
    with pytest.raises(psycopg.errors.IntegrityConstraintViolation), psycopg_transaction(tally.engine) as connection:
        connection.execute("UPDATE subscriptions SET customer_id = %s WHERE id = %s", (uuid.uuid4(), created.row.id))


def test_a_negotiated_override_sets_the_fee_and_its_identity(tally: Tally, tenant_id: uuid.UUID, catalog: None) -> None:
    customer = make_customer(tally, tenant_id)
    pro = price_id(tally, tenant_id, "pro_monthly")
    override = create_price_override(
        tally.engine,
        CLOCK,
        tenant_id,
        OverrideInput(
            customer_id=customer,
            price_id=pro,
            price={"model": "flat_fee", "currency": "USD", "amount": "75"},
            effective_from=JAN,
        ),
    )
    created = create_subscription(
        tally.engine, CLOCK, tenant_id, SubscriptionInput(customer_id=customer, prices=(PriceChoice(pro),))
    )
    (item,) = created.state.items
    assert item.unit_amount == Decimal(75)
    assert item.price_id == f"{pro}+{override.id}"


def test_migrating_a_plan_version_at_period_end_once(tally: Tally, tenant_id: uuid.UUID, catalog: None) -> None:
    first = plan_version_id(tally, tenant_id, "basic")
    customers = [make_customer(tally, tenant_id) for _ in range(2)]
    subscriptions = [_basic(tally, tenant_id, customer, start_at=JAN).row.id for customer in customers]
    apply_test_catalog(tally, tenant_id, CATALOG.replace("amount: 30}", "amount: 35}", 1))
    second = plan_version_id(tally, tenant_id, "basic")
    assert second != first
    migration = Migration(from_plan_version_id=first, to=PlanChoice(plan_version_id=second))
    result = migrate_subscriptions(tally.engine, CLOCK, tenant_id, migration)
    assert sorted(result.migrated) == sorted(subscriptions)
    again = migrate_subscriptions(tally.engine, CLOCK, tenant_id, migration)
    assert again.migrated == ()
    assert {code for _, code in again.skipped} == {"items_change_already_scheduled"}
    view = get_subscription(tally.engine, CLOCK, tenant_id, subscriptions[0], as_of=datetime(2026, 2, 1, tzinfo=UTC))
    (fee,) = [item for item in view.subscription.state.items if item.kind is ItemKind.FIXED]
    assert fee.unit_amount == Decimal(35)
    assert view.subscription.entries[-1].plan_version_id == second


def test_migrating_a_plan_version_immediately_once(tally: Tally, tenant_id: uuid.UUID, catalog: None) -> None:
    first = plan_version_id(tally, tenant_id, "basic")
    sid = _basic(tally, tenant_id, make_customer(tally, tenant_id), start_at=JAN).row.id
    apply_test_catalog(tally, tenant_id, CATALOG.replace("amount: 30}", "amount: 35}", 1))
    second = plan_version_id(tally, tenant_id, "basic")
    migration = Migration(from_plan_version_id=first, to=PlanChoice(plan_version_id=second), effective=When.NOW)
    assert migrate_subscriptions(tally.engine, CLOCK, tenant_id, migration).migrated == (sid,)
    # Already on the new version from now on: a second run leaves it alone, with the reason.
    again = migrate_subscriptions(tally.engine, CLOCK, tenant_id, migration)
    assert (again.migrated, again.skipped) == ((), ((sid, "subscription_not_on_plan_version"),))
    view = get_subscription(tally.engine, CLOCK, tenant_id, sid, as_of=NOW)
    (fee,) = [item for item in view.subscription.state.items if item.kind is ItemKind.FIXED]
    assert fee.unit_amount == Decimal(35)
    assert (view.subscription.entries[-1].plan_version_id, view.subscription.entries[-1].entry.effective_at) == (
        second,
        NOW,
    )
    before = get_subscription(tally.engine, CLOCK, tenant_id, sid, as_of=NOW - timedelta(seconds=1))
    (old_fee,) = [item for item in before.subscription.state.items if item.kind is ItemKind.FIXED]
    assert old_fee.unit_amount == Decimal(30)


def test_two_changes_at_once_are_serialized(tally: Tally, tenant_id: uuid.UUID, catalog: None) -> None:
    seat = price_id(tally, tenant_id, "seat")
    created = create_subscription(
        tally.engine,
        CLOCK,
        tenant_id,
        SubscriptionInput(customer_id=make_customer(tally, tenant_id), prices=(PriceChoice(seat, 1),), start_at=JAN),
    )
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def change(quantity: int) -> None:
        try:
            barrier.wait()
            moment = FixedClock(NOW + timedelta(hours=quantity))
            change_subscription_quantity(
                tally.engine, moment, tenant_id, created.row.id, QuantityChange(price_id=seat, quantity=quantity)
            )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=change, args=(quantity,)) for quantity in (2, 3, 4, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    entries = subscription_timeline(tally.engine, tenant_id, created.row.id)
    assert [entry.sequence for entry in entries] == [0, 1, 2, 3, 4]
    with psycopg_transaction(tally.engine) as connection:
        row = store.get_subscription(connection, tenant_id, created.row.id)
    assert row is not None and row.entries == 5
    view = get_subscription(tally.engine, CLOCK, tenant_id, created.row.id, as_of=NOW + timedelta(days=1))
    assert view.subscription.state.items[0].quantity == 5


def test_a_clock_advance_brings_the_cached_state_along(tally: Tally, tenant_id: uuid.UUID, catalog: None) -> None:
    test_clock = create_test_clock(tally.engine, tally.clock, tenant_id, TestClockInput(frozen_time=JAN))
    customer = make_customer(tally, tenant_id, test_clock_id=test_clock.id)
    created = create_subscription(
        tally.engine,
        tally.clock,
        tenant_id,
        SubscriptionInput(customer_id=customer, plan=PlanChoice(plan_code="basic")),
    )
    assert created.row.started_at == JAN  # the clock's time, not the system's
    cancel_subscription(tally.engine, tally.clock, tenant_id, created.row.id, Cancellation(effective=When.PERIOD_END))
    advance_test_clock(tally.engine, tally.clock, tenant_id, test_clock.id, datetime(2026, 1, 20, tzinfo=UTC))
    with psycopg_transaction(tally.engine) as connection:
        row = store.get_subscription(connection, tenant_id, created.row.id)
    assert row is not None
    assert (row.status, row.status_as_of, row.next_due_at) == (
        "canceled",
        datetime(2026, 1, 20, tzinfo=UTC),
        datetime(2026, 2, 1, tzinfo=UTC),
    )
    advance_test_clock(tally.engine, tally.clock, tenant_id, test_clock.id, datetime(2026, 2, 3, tzinfo=UTC))
    with psycopg_transaction(tally.engine) as connection:
        row = store.get_subscription(connection, tenant_id, created.row.id)
    assert row is not None
    assert (row.status, row.ended_at, row.next_due_at) == ("ended", datetime(2026, 2, 1, tzinfo=UTC), None)


def test_phases_annual_terms_and_resubscribing_the_same_day(tally: Tally, tenant_id: uuid.UUID, catalog: None) -> None:
    customer = make_customer(tally, tenant_id, timezone="America/New_York")
    annual = create_subscription(
        tally.engine,
        CLOCK,
        tenant_id,
        SubscriptionInput(customer_id=customer, plan=PlanChoice(plan_code="annual"), start_at=JAN),
    )
    sid = annual.row.id
    # The term is the annual fee's year; usage is billed monthly within it.
    assert get_subscription(tally.engine, CLOCK, tenant_id, sid).current_period_end == datetime(2027, 1, 1, tzinfo=UTC)
    events, _ = subscription_billing_events(
        tally.engine, CLOCK, tenant_id, sid, through=datetime(2026, 4, 1, tzinfo=UTC)
    )
    assert [event.kind for event in events.events].count(BillingEventKind.USAGE) == 3
    assert [event.amount_minor() for event in events.events if event.amount is not None] == [90000]
    # A phase: from June 1 (New York time) the customer is on basic, without proration.
    june = datetime(2026, 6, 1, 4, tzinfo=UTC)
    change_subscription_items(
        tally.engine,
        CLOCK,
        tenant_id,
        sid,
        ItemsChange(plan=PlanChoice(plan_code="basic"), effective=june, prorate=False),
    )
    before = get_subscription(tally.engine, CLOCK, tenant_id, sid, as_of=june - timedelta(seconds=1))
    after = get_subscription(tally.engine, CLOCK, tenant_id, sid, as_of=june)
    assert [item.unit_amount for item in before.subscription.state.items] == [Decimal(900), None]
    assert [item.unit_amount for item in after.subscription.state.items] == [Decimal(30), None]
    # A cancel before a scheduled phase supersedes it: the phase is withdrawn in the same write.
    superseding = cancel_subscription(tally.engine, CLOCK, tenant_id, sid, Cancellation())
    phase = next(recorded for recorded in superseding.entries if recorded.entry.effective_at == june)
    assert [(recorded.kind, recorded.entry.effective_at) for recorded in superseding.recorded] == [
        ("withdrawn", NOW),
        ("canceled", NOW),
    ]
    assert superseding.recorded[0].entry == Withdrawn(effective_at=NOW, withdraws=phase.sequence)
    assert superseding.state.status is SubscriptionStatus.ENDED
    # Cancel now and subscribe again the same day: two subscriptions, each its own periods.
    first = _basic(tally, tenant_id, customer, start_at=JAN).row.id
    ended = cancel_subscription(tally.engine, CLOCK, tenant_id, first, Cancellation())
    assert ended.state.status is SubscriptionStatus.ENDED
    again = _basic(tally, tenant_id, customer)
    assert again.row.id != first and again.state.status is SubscriptionStatus.ACTIVE
    assert again.timeline.history.start == ended.state.ended_at == NOW
    listed = list_subscriptions(tally.engine, CLOCK, tenant_id, PageRequest(), customer_id=customer)
    # Newest first: the new one, the one canceled the same day, the annual one canceled above.
    assert [view.subscription.state.status for view in listed.items] == [
        SubscriptionStatus.ACTIVE,
        SubscriptionStatus.ENDED,
        SubscriptionStatus.ENDED,
    ]


def test_upgrade_then_downgrade_in_one_period_nets_out(tally: Tally, tenant_id: uuid.UUID, catalog: None) -> None:
    customer = make_customer(tally, tenant_id)
    sid = _basic(tally, tenant_id, customer, start_at=JAN).row.id
    change_subscription_items(tally.engine, CLOCK, tenant_id, sid, ItemsChange(plan=PlanChoice(plan_code="pro")))
    later = FixedClock(NOW + timedelta(days=5))
    change_subscription_items(tally.engine, later, tenant_id, sid, ItemsChange(plan=PlanChoice(plan_code="basic")))
    events, _ = subscription_billing_events(tally.engine, later, tenant_id, sid)
    total = sum(
        (
            Fraction(event.unit_amount or 0)
            * (event.quantity or 0)
            * event.proration.exact_fraction
            * (-1 if event.kind is BillingEventKind.FIXED_FEE_CREDIT else 1)
            for event in events.events
            if event.proration is not None
        ),
        Fraction(0),
    )
    # Basic for the 26 days outside the changes, pro and 3 seats for the 5 days between them.
    assert total == Fraction(30 * 26, 31) + Fraction(120 * 5, 31)


def test_the_refresh_is_safe_to_repeat_and_never_goes_back(tally: Tally, tenant_id: uuid.UUID, catalog: None) -> None:
    from tally.app.refresh_subscriptions import HOOK_NAME, refresh_subscriptions
    from tally.app.test_clock_hooks import advance_hooks

    assert HOOK_NAME in dict(advance_hooks())  # registered by the composition root
    customer = make_customer(tally, tenant_id)
    created = _basic(tally, tenant_id, customer, start_at=JAN)
    cancel_subscription(tally.engine, CLOCK, tenant_id, created.row.id, Cancellation(effective=When.PERIOD_END))
    feb = datetime(2026, 2, 1, tzinfo=UTC)
    assert refresh_subscriptions(tally.engine, tenant_id, (customer,), feb) == 1
    assert refresh_subscriptions(tally.engine, tenant_id, (customer,), feb) == 1  # the same values again
    assert refresh_subscriptions(tally.engine, tenant_id, (customer,), NOW) == 0  # not backwards
    with psycopg_transaction(tally.engine) as connection:
        row = store.get_subscription(connection, tenant_id, created.row.id)
    assert row is not None and (row.status, row.status_as_of, row.ended_at) == ("ended", feb, feb)
