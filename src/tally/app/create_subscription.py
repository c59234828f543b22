"""Create a subscription: a customer on a published plan version, or on an explicit list of prices.

The subscription lives in the customer's time: its start defaults to the customer's now (a test
clock's time for a customer on one), its periods follow the customer's time zone, and its trial
defaults to the plan version's trial length in days (local calendar days). The first fact of its
timeline is the core's `Started`; the core checks it (and everything after it, forever).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id
from tally.adapters.postgres import customers as customer_store
from tally.adapters.postgres import subscriptions as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app._subscription_items import PlanChoice, PriceChoice, resolve_items
from tally.app._subscription_write import RecordedEntry, Subscription, derive_cache, refresh, timeline_of
from tally.app.customer_clock import clock_for_customer
from tally.app.set_billing_threshold import ThresholdChange, record_threshold
from tally.core.rejections import Rejected
from tally.core.subscriptions import BillingAnchor, ProrationBasis, Started, TrialUsage
from tally.core.subscriptions.cycles import zone

# More than a customer ever needs at once; a bound so a loop cannot fill the table.
SUBSCRIPTIONS_PER_CUSTOMER_MAX = 1_000
TRIAL_DAYS_MAX = 730
METADATA_KEYS_MAX = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionInput:
    customer_id: uuid.UUID
    plan: PlanChoice | None = None
    prices: Sequence[PriceChoice] = ()
    # None: the customer's now.
    start_at: datetime | None = None
    # None: the plan version's trial (0 days for explicit prices). `trial_end` wins over `trial_days`.
    trial_days: int | None = None
    trial_end: datetime | None = None
    trial_usage: TrialUsage = TrialUsage.BILLED
    anchor: BillingAnchor = field(default_factory=BillingAnchor)
    proration_basis: ProrationBasis = ProrationBasis.SECOND
    metadata: Mapping[str, str] = field(default_factory=dict)
    # Threshold billing from the start (None: off); see `set_billing_threshold`.
    billing_threshold: ThresholdChange | None = None

    def __post_init__(self) -> None:
        if self.trial_days is not None and (
            type(self.trial_days) is not int or not 0 <= self.trial_days <= TRIAL_DAYS_MAX
        ):
            raise Rejected.because("trial_days_out_of_range", f"a trial lasts 0 to {TRIAL_DAYS_MAX} days", "trial_days")
        if len(self.metadata) > METADATA_KEYS_MAX:
            raise Rejected.because(
                "metadata_exceeds_limit", f"at most METADATA_KEYS_MAX = {METADATA_KEYS_MAX} keys", "metadata"
            )


def _trial_end(start: datetime, days: int, timezone: str) -> datetime | None:
    """`days` local calendar days after the start, at the start's wall time (None for no trial)."""
    if days == 0:
        return None
    tz = zone(timezone)
    local = start.astimezone(tz).replace(tzinfo=None) + timedelta(days=days)
    return local.replace(tzinfo=tz).astimezone(start.tzinfo)


def create_subscription(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, subscription: SubscriptionInput
) -> Subscription:
    def work(connection: psycopg.Connection[Any]) -> Subscription:
        # One customer's subscription writes are serialized; its clock is read under that lock.
        store.lock_customer(connection, tenant_id, subscription.customer_id)
        customer = customer_store.get_customer(connection, tenant_id, subscription.customer_id)
        if customer is None:
            raise Rejected.because("customer_not_found", "no such customer", "customer")
        now = clock_for_customer(connection, tenant_id, customer.id, system=clock).now()
        start = subscription.start_at if subscription.start_at is not None else now
        resolved = resolve_items(
            connection,
            tenant_id,
            customer.id,
            customer.currency,
            start,
            plan=subscription.plan,
            prices=subscription.prices,
        )
        if subscription.trial_end is not None:
            trial_end: datetime | None = subscription.trial_end
        else:
            days = subscription.trial_days if subscription.trial_days is not None else resolved.trial_days
            trial_end = _trial_end(start, days, customer.timezone)
        started = Started(
            effective_at=start,
            items=resolved.items,
            timezone=customer.timezone,
            anchor=subscription.anchor,
            trial_end=trial_end,
            trial_usage=subscription.trial_usage,
            proration_basis=subscription.proration_basis,
        )
        first = RecordedEntry(0, started, now, resolved.plan_version_id, resolved.origins)
        subscription_id = new_id()
        # Checked by the core before anything is written.
        cache = derive_cache(timeline_of(subscription_id, [first]), now)
        if store.count_subscriptions_of_customer(connection, tenant_id, customer.id) >= SUBSCRIPTIONS_PER_CUSTOMER_MAX:
            raise Rejected.because(
                "subscriptions_exceed_limit",
                f"a customer has at most SUBSCRIPTIONS_PER_CUSTOMER_MAX = {SUBSCRIPTIONS_PER_CUSTOMER_MAX}",
                "customer",
            )
        store.insert_subscription(
            connection,
            subscription_id=subscription_id,
            tenant_id=tenant_id,
            customer_id=customer.id,
            plan_version_id=resolved.plan_version_id,
            metadata=subscription.metadata,
            status=cache.status.value,
            status_as_of=now,
            started_at=start,
            ended_at=cache.ended_at,
            next_due_at=cache.next_due_at,
            now=now,
        )
        store.append_entry(connection, tenant_id, subscription_id, first)
        if subscription.billing_threshold is not None:
            record_threshold(
                connection,
                tenant_id,
                subscription_id,
                timeline_of(subscription_id, [first]),
                subscription.billing_threshold,
                now=now,
            )
        row = store.get_subscription(connection, tenant_id, subscription_id)
        if row is None:  # pragma: no cover - inserted above
            raise LookupError("subscription not inserted")
        return refresh(connection, row, [first], as_of=now, now=now)

    return run_in_transaction(engine, work)
