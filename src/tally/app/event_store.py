"""The event store: where usage comes from, for everything that needs quantities.

Pricing, invoicing and the usage API ask an `EventStore` for usage and never look at events or
rollups themselves, so a different store (ClickHouse, see docs/scale-out.md) is one new adapter and
one line in `open_event_store`, and nothing else changes.

    store = open_event_store(tally.engine)
    result = store.usage(tenant_id, UsageQuery(customer="acme", meter=version, start=…, end=…))
    for row in result.rows: row.bucket, row.group, row.value   # exact Decimal

A store answers exactly what `tally.core.metering.aggregation.reference_usage` would answer over the
tenant's effective events, in one consistent snapshot, including events accepted a moment ago.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy import Engine

from tally.adapters.postgres.usage import PostgresEventStore
from tally.core.metering.usage import Granularity, UsageQuery, UsageResult, UsageRow

__all__ = ["EventStore", "Granularity", "UsageQuery", "UsageResult", "UsageRow", "open_event_store"]


class EventStore(Protocol):
    def usage(self, tenant_id: uuid.UUID, query: UsageQuery) -> UsageResult:
        """One customer's usage of one meter version over `[query.start, query.end)`.

        Raises `Rejected` (e.g. `meter_not_found`) for expected failures; values are exact.
        """
        ...


def open_event_store(engine: Engine) -> EventStore:
    """The configured event store. Today: PostgreSQL, the same database as everything else."""
    return PostgresEventStore(engine)
