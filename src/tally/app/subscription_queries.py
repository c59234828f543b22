"""Reading subscriptions: one with its state at the customer's now, lists, the timeline of facts, and
the billing events the core derives from it (what invoicing consumes).

Derived answers are computed from the timeline at the customer's clock (a test clock's time for a
customer on one), never read from the cached columns, which only say what a billing run should look at.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.pagination import Page, PageRequest
from tally.adapters.postgres import billing_thresholds as threshold_store
from tally.adapters.postgres import customers as customer_store
from tally.adapters.postgres import subscriptions as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app._subscription_write import RecordedEntry, Subscription, load, timeline_of
from tally.app.customer_clock import clock_for_customer
from tally.core.rejections import Rejected
from tally.core.subscriptions import (
    BillingEvents,
    SubscriptionStatus,
    Timeline,
    billing_events,
    current_period_end,
    scheduled_changes,
    state_at,
)


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    subscription: Subscription
    # The end of the current term at `as_of` (None once ended).
    current_period_end: datetime | None


def _view(
    row: store.SubscriptionRow,
    entries: tuple[RecordedEntry, ...],
    as_of: datetime,
    threshold: threshold_store.ThresholdFact | None,
) -> SubscriptionView:
    timeline = timeline_of(row.id, entries)
    return view_of(Subscription(row, entries, timeline, as_of, state_at(timeline, as_of), billing_threshold=threshold))


def view_of(subscription: Subscription) -> SubscriptionView:
    """The view of a subscription a write answered (no second read: the write's state at its now)."""
    ended = subscription.state.status is SubscriptionStatus.ENDED
    period_end = None if ended else current_period_end(subscription.timeline, subscription.as_of)
    return SubscriptionView(subscription, period_end)


def get_subscription(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, subscription_id: uuid.UUID, *, as_of: datetime | None = None
) -> SubscriptionView:
    """The subscription and its state at `as_of` (default: the customer's now)."""
    with psycopg_transaction(engine) as connection:
        row, entries = load(connection, tenant_id, subscription_id, for_update=False)
        moment = as_of or clock_for_customer(connection, tenant_id, row.customer_id, system=clock).now()
        threshold = threshold_store.in_force(connection, tenant_id, [row.id]).get(row.id)
        return _view(row, entries, moment, threshold)


def list_subscriptions(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, page: PageRequest, *, customer_id: uuid.UUID | None = None
) -> Page[SubscriptionView]:
    """Newest first, each with its state at its customer's now."""
    with psycopg_transaction(engine) as connection:
        if customer_id is not None and customer_store.get_customer(connection, tenant_id, customer_id) is None:
            raise Rejected.because("customer_not_found", "no such customer", "customer")
        found = store.list_subscriptions(connection, tenant_id, page, customer_id=customer_id)
        nows: dict[uuid.UUID, datetime] = {}
        thresholds = threshold_store.in_force(connection, tenant_id, [row.id for row in found.items])
        views = []
        for row in found.items:
            if row.customer_id not in nows:
                nows[row.customer_id] = clock_for_customer(connection, tenant_id, row.customer_id, system=clock).now()
            entries = tuple(store.timeline_of(connection, row.id))
            views.append(_view(row, entries, nows[row.customer_id], thresholds.get(row.id)))
        return Page(items=views, has_more=found.has_more, backwards=found.backwards)


def subscription_timeline(
    engine: Engine, tenant_id: uuid.UUID, subscription_id: uuid.UUID
) -> tuple[RecordedEntry, ...]:
    """The facts in recording order."""
    with psycopg_transaction(engine) as connection:
        return load(connection, tenant_id, subscription_id, for_update=False)[1]


@dataclass(frozen=True, slots=True)
class ScheduledChanges:
    """The facts still ahead at `as_of` (the customer's now) that can be withdrawn, in time order."""

    as_of: datetime
    changes: tuple[RecordedEntry, ...]


def subscription_scheduled_changes(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, subscription_id: uuid.UUID
) -> ScheduledChanges:
    """Plan and quantity changes, phases, pauses and resumes recorded for later and not withdrawn."""
    with psycopg_transaction(engine) as connection:
        row, entries = load(connection, tenant_id, subscription_id, for_update=False)
        now = clock_for_customer(connection, tenant_id, row.customer_id, system=clock).now()
    pending = scheduled_changes(timeline_of(row.id, entries), now)
    return ScheduledChanges(now, tuple(entries[position] for position in pending))


def subscription_billing_events(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, subscription_id: uuid.UUID, *, through: datetime | None = None
) -> tuple[BillingEvents, Timeline]:
    """Every billing event due at or before `through` (default: the customer's now)."""
    with psycopg_transaction(engine) as connection:
        row, entries = load(connection, tenant_id, subscription_id, for_update=False)
        moment = through or clock_for_customer(connection, tenant_id, row.customer_id, system=clock).now()
    timeline = timeline_of(row.id, entries)
    return billing_events(timeline, through=moment), timeline


def active_price_id(engine: Engine, tenant_id: uuid.UUID, code: str) -> uuid.UUID:
    """The active catalog price with this code (for the CLI, which takes codes as well as ids)."""
    with psycopg_transaction(engine) as connection:
        found = store.active_price_id(connection, tenant_id, code)
    if found is None:
        raise Rejected.because("price_not_found", f"no active price with code {code[:80]!r}", "price")
    return found
