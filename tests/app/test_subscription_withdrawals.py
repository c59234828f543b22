"""Withdrawing scheduled changes on real PostgreSQL: the use case, what the database refuses on its
own, the cached state, and plan migrations that see a withdrawn change as gone."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tally.adapters.clock import FixedClock
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app._subscription_items import PlanChoice
from tally.app._subscription_write import When
from tally.app.change_subscription_items import ItemsChange, change_subscription_items
from tally.app.change_subscription_quantity import QuantityChange, change_subscription_quantity
from tally.app.create_subscription import SubscriptionInput, create_subscription
from tally.app.migrate_subscriptions import Migration, migrate_subscriptions
from tally.app.pause_subscription import pause_subscription
from tally.app.subscription_queries import get_subscription, subscription_scheduled_changes
from tally.app.withdraw_scheduled_change import withdraw_scheduled_change
from tally.bootstrap import Tally
from tally.core.rejections import Rejected
from tally.core.subscriptions import ItemKind, SubscriptionStatus
from tests.subscription_support import CATALOG, apply_test_catalog, make_customer, plan_version_id, price_id

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


def _subscription(tally: Tally, tenant_id: uuid.UUID, plan: str = "pro") -> uuid.UUID:
    created = create_subscription(
        tally.engine,
        CLOCK,
        tenant_id,
        SubscriptionInput(
            customer_id=make_customer(tally, tenant_id), plan=PlanChoice(plan_code=plan), start_at=JAN, trial_days=0
        ),
    )
    return created.row.id


def test_withdrawn_phases_leave_the_state_and_the_cache_as_before(
    tally: Tally, tenant_id: uuid.UUID, catalog: None
) -> None:
    sid = _subscription(tally, tenant_id)
    seat = price_id(tally, tenant_id, "seat")
    change_subscription_quantity(
        tally.engine, CLOCK, tenant_id, sid, QuantityChange(price_id=seat, quantity=9, effective=When.PERIOD_END)
    )
    paused = pause_subscription(tally.engine, CLOCK, tenant_id, sid, datetime(2026, 1, 20, tzinfo=UTC))
    # The pause on Jan 20 is the next moment anything is due.
    assert paused.row.next_due_at == datetime(2026, 1, 20, tzinfo=UTC)
    found = subscription_scheduled_changes(tally.engine, CLOCK, tenant_id, sid)
    assert (found.as_of, [(r.sequence, r.kind) for r in found.changes]) == (
        NOW,
        [(2, "paused"), (1, "quantity_changed")],
    )
    withdrawn = withdraw_scheduled_change(tally.engine, CLOCK, tenant_id, sid, 2)
    assert [(r.sequence, r.kind, r.recorded_at) for r in withdrawn.recorded] == [(3, "withdrawn", NOW)]
    # The cache is derived again: the next due moment is the period end, as if never paused.
    assert withdrawn.row.next_due_at == datetime(2026, 2, 1, tzinfo=UTC)
    assert withdrawn.row.status == "active"
    withdraw_scheduled_change(tally.engine, CLOCK, tenant_id, sid, 1)
    february = get_subscription(tally.engine, CLOCK, tenant_id, sid, as_of=datetime(2026, 2, 2, tzinfo=UTC))
    assert february.subscription.state.status is SubscriptionStatus.ACTIVE
    assert [item.quantity for item in february.subscription.state.items if item.kind is ItemKind.FIXED] == [1, 3]
    assert subscription_scheduled_changes(tally.engine, CLOCK, tenant_id, sid).changes == ()
    assert _code(lambda: withdraw_scheduled_change(tally.engine, CLOCK, tenant_id, sid, 1)) == (
        "change_already_withdrawn"
    )
    late = FixedClock(datetime(2026, 3, 1, tzinfo=UTC))
    change_subscription_quantity(
        tally.engine, CLOCK, tenant_id, sid, QuantityChange(price_id=seat, quantity=4, effective=When.PERIOD_END)
    )
    assert _code(lambda: withdraw_scheduled_change(tally.engine, late, tenant_id, sid, 5)) == (
        "change_already_in_effect"
    )
    assert _code(lambda: withdraw_scheduled_change(tally.engine, CLOCK, tenant_id, uuid.uuid4(), 1)) == (
        "subscription_not_found"
    )


def test_the_database_refuses_a_second_withdrawal_and_one_of_the_start(
    tally: Tally, tenant_id: uuid.UUID, catalog: None
) -> None:
    sid = _subscription(tally, tenant_id, "basic")
    change_subscription_items(
        tally.engine, CLOCK, tenant_id, sid, ItemsChange(plan=PlanChoice(plan_code="pro"), effective=When.PERIOD_END)
    )
    withdraw_scheduled_change(tally.engine, CLOCK, tenant_id, sid, 1)

    def insert(sequence: int, withdraws: Any) -> None:
        with psycopg_transaction(tally.engine) as connection:
            connection.execute(
                """INSERT INTO subscription_timeline
                       (tenant_id, subscription_id, sequence, kind, effective_at, recorded_at, payload)
                   VALUES (%s, %s, %s, 'withdrawn', %s, %s, %s)""",
                (
                    tenant_id,
                    sid,
                    sequence,
                    NOW,
                    NOW,
                    json.dumps({"effective_at": NOW.isoformat(), "withdraws": withdraws}),
                ),
            )

    # Past the core, the database still holds its part of the rules.
    with pytest.raises(psycopg.errors.UniqueViolation):
        insert(3, 1)
    for withdraws in (0, 3, None, "1"):
        with pytest.raises(psycopg.errors.CheckViolation):
            insert(3, withdraws)
    with pytest.raises(psycopg.errors.RestrictViolation), psycopg_transaction(tally.engine) as connection:
        connection.execute("DELETE FROM subscription_timeline WHERE subscription_id = %s AND sequence = 2", (sid,))


def test_a_migration_sees_a_withdrawn_change_as_gone(tally: Tally, tenant_id: uuid.UUID, catalog: None) -> None:
    first = plan_version_id(tally, tenant_id, "basic")
    sid = _subscription(tally, tenant_id, "basic")
    apply_test_catalog(tally, tenant_id, CATALOG.replace("amount: 30}", "amount: 35}", 1))
    second = plan_version_id(tally, tenant_id, "basic")
    migration = Migration(from_plan_version_id=first, to=PlanChoice(plan_version_id=second))
    assert migrate_subscriptions(tally.engine, CLOCK, tenant_id, migration).migrated == (sid,)
    # Changing one's mind: the migration is withdrawn, and a second run migrates it again.
    withdraw_scheduled_change(tally.engine, CLOCK, tenant_id, sid, 1)
    again = migrate_subscriptions(tally.engine, CLOCK, tenant_id, migration)
    assert (again.migrated, again.skipped) == ((sid,), ())
    view = get_subscription(tally.engine, CLOCK, tenant_id, sid, as_of=datetime(2026, 2, 1, tzinfo=UTC))
    (fee,) = [item for item in view.subscription.state.items if item.kind is ItemKind.FIXED]
    assert fee.unit_amount == Decimal(35)
