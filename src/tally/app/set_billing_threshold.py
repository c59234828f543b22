"""Set (or turn off) a subscription's billing threshold: a new fact, never an edit.

In one transaction, under the subscription's row lock:

    gather  the subscription, its timeline, its threshold facts and the customer's now
    decide  the amount (1 to `THRESHOLD_MINOR_MAX` minor units, or None: off) in the subscription's
            currency (a currency named with it must be that one); an ended subscription takes no
            new setting; the same setting as the one in force records nothing (a repeat is a no-op)
    apply   the fact appended, numbered after the others, recorded at the customer's now

The setting is read by the threshold evaluation (`evaluate_billing_thresholds`) from then on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import billing_thresholds as threshold_store
from tally.adapters.postgres.connections import psycopg_transaction, run_in_transaction
from tally.app._subscription_write import load, timeline_of
from tally.app.customer_clock import clock_for_customer
from tally.core.invoicing import check_threshold_amount, check_threshold_currency
from tally.core.rejections import Rejected
from tally.core.subscriptions import SubscriptionStatus, Timeline, state_at

Connection = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ThresholdChange:
    """`amount_minor` None turns threshold billing off; `currency`, when given, must be the
    subscription's (checked, never converted)."""

    amount_minor: int | None
    currency: str | None = None

    def __post_init__(self) -> None:
        if self.amount_minor is not None:
            check_threshold_amount(self.amount_minor)


@dataclass(frozen=True, slots=True)
class ThresholdSetting:
    """The setting in force after the write, and whether the write appended a fact."""

    subscription_id: uuid.UUID
    in_force: threshold_store.ThresholdFact | None
    recorded: bool


def subscription_currency(timeline: Timeline) -> str:
    """The currency every item of the subscription bills in (the timeline checks they share one)."""
    return timeline.history.started.items[0].currency.code


def record_threshold(
    connection: Connection,
    tenant_id: uuid.UUID,
    subscription_id: uuid.UUID,
    timeline: Timeline,
    change: ThresholdChange,
    *,
    now: datetime,
) -> ThresholdSetting:
    """Decide and apply inside the caller's transaction, which holds the subscription's lock (a
    create, or `set_billing_threshold`)."""
    currency = subscription_currency(timeline)
    check_threshold_currency(change.currency, currency)
    facts = threshold_store.facts_of(connection, tenant_id, subscription_id)
    current = facts[-1] if facts else None
    current_amount = current.amount_minor if current is not None else None
    if current_amount == change.amount_minor:
        return ThresholdSetting(subscription_id, current, recorded=False)
    if state_at(timeline, now).status is SubscriptionStatus.ENDED:
        raise Rejected.because(
            "subscription_must_not_have_ended", "an ended subscription takes no billing threshold", "id"
        )
    if len(facts) >= threshold_store.CHANGES_PER_SUBSCRIPTION_MAX:
        raise Rejected.because(
            "billing_threshold_changes_exceed_limit",
            f"at most CHANGES_PER_SUBSCRIPTION_MAX = {threshold_store.CHANGES_PER_SUBSCRIPTION_MAX} threshold "
            "changes per subscription",
            "billing_threshold",
        )
    fact = threshold_store.ThresholdFact(subscription_id, len(facts), change.amount_minor, currency, now)
    threshold_store.append(connection, tenant_id, fact)
    return ThresholdSetting(subscription_id, fact, recorded=True)


def set_billing_threshold(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, subscription_id: uuid.UUID, change: ThresholdChange
) -> ThresholdSetting:
    def work(connection: Connection) -> ThresholdSetting:
        row, entries = load(connection, tenant_id, subscription_id, for_update=True)
        now = clock_for_customer(connection, tenant_id, row.customer_id, system=clock).now()
        return record_threshold(connection, tenant_id, row.id, timeline_of(row.id, entries), change, now=now)

    return run_in_transaction(engine, work)


def billing_threshold_of(engine: Engine, tenant_id: uuid.UUID, subscription_id: uuid.UUID) -> ThresholdSetting:
    """The setting in force (None when never set) and nothing recorded."""
    with psycopg_transaction(engine) as connection:
        row, _ = load(connection, tenant_id, subscription_id, for_update=False)
        found = threshold_store.in_force(connection, tenant_id, [row.id]).get(row.id)
    return ThresholdSetting(subscription_id, found, recorded=False)
