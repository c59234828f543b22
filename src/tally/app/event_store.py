"""The event store: where usage comes from, for everything that needs quantities.

Pricing, invoicing and the usage API ask an `EventStore` for usage and never look at events or
rollups themselves, so a different store (ClickHouse, see docs/scale-out.md) is one new adapter and
one line in `open_event_store`, and nothing else changes.

    store = open_event_store(tally.engine)
    result = store.usage(tenant_id, UsageQuery(customer="acme", meter=version, start=…, end=…))
    for row in result.rows: row.bucket, row.group, row.value   # exact Decimal
    page = store.matched_events(tenant_id, MatchedEventsQuery(customer="acme", meter=version, windows=…, group=…))
    for event in page.events: event.event_id, event.value      # the events that answer is made of

A store answers exactly what `tally.core.metering.aggregation.reference_usage` would answer over the
tenant's effective events, in one consistent snapshot, including events accepted a moment ago.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy import Engine

from tally.adapters.postgres.usage import PostgresEventStore
from tally.core.metering.usage import (
    Granularity,
    MatchedEvent,
    MatchedEventsPage,
    MatchedEventsQuery,
    UsageQuery,
    UsageResult,
    UsageRow,
)

__all__ = [
    "EventStore",
    "Granularity",
    "MatchedEvent",
    "MatchedEventsPage",
    "MatchedEventsQuery",
    "UsageQuery",
    "UsageResult",
    "UsageRow",
    "open_event_store",
]


class EventStore(Protocol):
    def usage(self, tenant_id: uuid.UUID, query: UsageQuery) -> UsageResult:
        """One customer's usage of one meter version over `[query.start, query.end)`.

        Raises `Rejected` (e.g. `meter_not_found`) for expected failures; values are exact.
        """
        ...

    def matched_events(self, tenant_id: uuid.UUID, query: MatchedEventsQuery) -> MatchedEventsPage:
        """One page of the effective events a usage answer over `query.windows` counts, in one series
        group, by (timestamp, event id): over the same windows and group, their values add up to
        the usage answer (count, sum) or make it (max, min, latest, distinct values). Raw events
        only: events past the retention period are gone from the list while their rollups remain.
        """
        ...


def open_event_store(engine: Engine) -> EventStore:
    """The configured event store. Today: PostgreSQL, the same database as everything else."""
    return PostgresEventStore(engine)
