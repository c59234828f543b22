"""Bring subscriptions up to a customer's new time: the test clock advance hook of subscriptions.

When a test clock advances, the facts already recorded for later moments (a scheduled cancel, a
change at period end, a phase, a trial end) become the present. Nothing new needs recording — the
timeline already holds them — but what is derived from it at the customer's now is cached on each
subscription row (status, ended_at, next_due_at, as of the clock's time) and must move with the
clock: that cache is what the billing run (next) scans for subscriptions whose events fell due.

The hook is registered by the composition root (`register_subscription_hooks`) and is safe to run
again for the same advance (it derives the same values; it never moves a cache backwards in time).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.postgres import subscriptions as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app._subscription_write import load, refresh
from tally.app.test_clock_hooks import ClockAdvance, register_advance_hook

HOOK_NAME = "subscriptions.bring_up_to_date"


def refresh_subscriptions(
    engine: Engine, tenant_id: uuid.UUID, customer_ids: tuple[uuid.UUID, ...], as_of: datetime
) -> int:
    """Derive the cached state of every subscription of these customers at `as_of`; how many moved."""

    def ids(connection: psycopg.Connection[Any]) -> list[uuid.UUID]:
        return store.subscription_ids_of_customers(connection, tenant_id, customer_ids)

    refreshed = 0
    for subscription_id in run_in_transaction(engine, ids):

        def work(connection: psycopg.Connection[Any], subscription_id: uuid.UUID = subscription_id) -> bool:
            row, entries = load(connection, tenant_id, subscription_id, for_update=True)
            if row.status_as_of > as_of:
                return False  # already derived at a later time
            refresh(connection, row, entries, as_of=as_of, now=as_of)
            return True

        refreshed += run_in_transaction(engine, work)
    return refreshed


def _on_advance(engine: Engine, advance: ClockAdvance) -> None:
    if advance.customer_ids:
        refresh_subscriptions(engine, advance.tenant_id, advance.customer_ids, advance.advanced_to)


def register_subscription_hooks() -> None:
    register_advance_hook(HOOK_NAME, _on_advance)
