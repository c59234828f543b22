"""What every subscription write shares: lock, read the timeline, let the use case decide the new
facts, check them by folding the whole timeline in the core, append them, refresh the cached state.

    gather  the subscription row (locked FOR UPDATE: writes to one subscription are serialized),
            its facts, and the customer's clock (a test clock's frozen time, or the system's)
    decide  the use case returns new entries; `Timeline(...)` with them appended validates the lot
    apply   the entries are appended (sequence = the next number; the primary key refuses a gap or
            a duplicate) and the cache (status, next_due_at) is derived again at the customer's now
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import billing_thresholds as threshold_store
from tally.adapters.postgres import subscriptions as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app.customer_clock import clock_for_customer
from tally.core.rejections import Rejected
from tally.core.subscriptions import (
    SubscriptionState,
    SubscriptionStatus,
    Timeline,
    TimelineEntry,
    billing_events,
    current_period_end,
    state_at,
)

Connection = psycopg.Connection[Any]
RecordedEntry = store.RecordedEntry
ItemOrigin = store.ItemOrigin


class When(StrEnum):
    """When a change takes effect, besides an explicit moment."""

    # The customer's now (a test clock's time for a customer on one).
    NOW = "now"
    # The end of the current term (`current_period_end`), resolved when recorded.
    PERIOD_END = "period_end"


Effective = When | datetime


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscription as a use case answers it: its row, its facts, and its state at `as_of`."""

    row: store.SubscriptionRow
    entries: tuple[RecordedEntry, ...]
    timeline: Timeline
    as_of: datetime
    state: SubscriptionState
    # The facts the write that answers this appended (empty for reads).
    recorded: tuple[RecordedEntry, ...] = ()
    # The billing threshold setting in force (None: never set; its amount None: turned off).
    billing_threshold: threshold_store.ThresholdFact | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """What a use case sees when it decides: the subscription so far and the customer's now."""

    connection: Connection
    tenant_id: uuid.UUID
    row: store.SubscriptionRow
    entries: tuple[RecordedEntry, ...]
    timeline: Timeline
    now: datetime

    def resolve(self, effective: Effective) -> datetime:
        """The moment a change takes effect: explicit, now, or the end of the current term at now."""
        if isinstance(effective, datetime):
            return effective
        if effective is When.PERIOD_END:
            return current_period_end(self.timeline, self.now)
        return self.now

    def recorded(self, entries: Sequence[TimelineEntry | RecordedEntry]) -> list[RecordedEntry]:
        """Number new facts after the existing ones, recorded at now."""
        numbered = []
        for offset, entry in enumerate(entries):
            if isinstance(entry, RecordedEntry):
                numbered.append(
                    RecordedEntry(
                        len(self.entries) + offset, entry.entry, self.now, entry.plan_version_id, entry.origins
                    )
                )
            else:
                numbered.append(RecordedEntry(len(self.entries) + offset, entry, self.now, None, {}))
        return numbered


def timeline_of(subscription_id: uuid.UUID, entries: Sequence[RecordedEntry]) -> Timeline:
    """The core's timeline of stored facts (validated on construction)."""
    return Timeline(str(subscription_id), tuple(recorded.entry for recorded in entries))


@dataclass(frozen=True, slots=True)
class Cache:
    status: SubscriptionStatus
    ended_at: datetime | None
    next_due_at: datetime | None


def derive_cache(timeline: Timeline, as_of: datetime) -> Cache:
    state = state_at(timeline, as_of)
    return Cache(state.status, timeline.history.ended_at, billing_events(timeline, through=as_of).next_due_at)


def load(
    connection: Connection, tenant_id: uuid.UUID, subscription_id: uuid.UUID, *, for_update: bool
) -> tuple[store.SubscriptionRow, tuple[RecordedEntry, ...]]:
    row = store.get_subscription(connection, tenant_id, subscription_id, for_update=for_update)
    if row is None:
        raise Rejected.because("subscription_not_found", "no such subscription", "id")
    return row, tuple(store.timeline_of(connection, subscription_id))


def refresh(
    connection: Connection, row: store.SubscriptionRow, entries: Sequence[RecordedEntry], as_of: datetime, now: datetime
) -> Subscription:
    """Derive the cached state at `as_of` again and store it; `now` is the row's update time."""
    timeline = timeline_of(row.id, entries)
    cache = derive_cache(timeline, as_of)
    store.refresh_cache(
        connection,
        row.id,
        status=cache.status.value,
        status_as_of=as_of,
        ended_at=cache.ended_at,
        next_due_at=cache.next_due_at,
        entries=len(entries),
        now=now,
    )
    fresh = store.get_subscription(connection, row.tenant_id, row.id)
    if fresh is None:  # pragma: no cover - the caller holds the row's lock
        raise LookupError(f"subscription {row.id} vanished")
    threshold = threshold_store.in_force(connection, row.tenant_id, [row.id]).get(row.id)
    return Subscription(fresh, tuple(entries), timeline, as_of, state_at(timeline, as_of), billing_threshold=threshold)


def record(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    subscription_id: uuid.UUID,
    decide: Callable[[Context], Sequence[TimelineEntry | RecordedEntry]],
) -> Subscription:
    """Append the facts `decide` returns to one subscription, in one transaction under its lock."""

    def work(connection: Connection) -> Subscription:
        row, entries = load(connection, tenant_id, subscription_id, for_update=True)
        now = clock_for_customer(connection, tenant_id, row.customer_id, system=clock).now()
        context = Context(connection, tenant_id, row, entries, timeline_of(row.id, entries), now)
        new = context.recorded(decide(context))
        everything = (*entries, *new)
        # The whole timeline with the new facts must fold: this is where every core rule is checked.
        timeline_of(row.id, everything)
        for recorded in new:
            store.append_entry(connection, tenant_id, row.id, recorded)
        return replace(refresh(connection, row, everything, as_of=now, now=now), recorded=tuple(new))

    return run_in_transaction(engine, work)


def origins_of(entries: Sequence[RecordedEntry]) -> dict[str, store.ItemOrigin]:
    """The catalog origin of every item the subscription ever held, by item id."""
    origins: dict[str, store.ItemOrigin] = {}
    for recorded in entries:
        origins.update(recorded.origins)
    return origins
