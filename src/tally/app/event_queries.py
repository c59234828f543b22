"""Read raw events: one event with its corrections and effective properties, or a listing.

The listing is ordered by timestamp, then id, and pages with an opaque cursor (the last row's
timestamp and id). It is bounded: at most `EVENTS_PAGE_LIMIT_MAX` per page, and without a customer
at most `EVENTS_WINDOW_DAYS_MAX` days (raw events of every customer are only indexed by customer).
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import events as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.core.metering import corrections as rules
from tally.core.rejections import Rejected

__all__ = [
    "EVENTS_PAGE_LIMIT_DEFAULT",
    "EVENTS_PAGE_LIMIT_MAX",
    "EVENTS_WINDOW_DAYS_DEFAULT",
    "EVENTS_WINDOW_DAYS_MAX",
    "EventPage",
    "EventQuery",
    "EventView",
    "decode_cursor",
    "encode_cursor",
    "get_event",
    "list_events",
]

EVENTS_PAGE_LIMIT_DEFAULT = 100
EVENTS_PAGE_LIMIT_MAX = 1000
# Without `from`, a listing starts this long before `to`.
EVENTS_WINDOW_DAYS_DEFAULT = 31
# Without `customer`, a listing covers at most this long.
EVENTS_WINDOW_DAYS_MAX = 31


@dataclass(frozen=True, slots=True)
class EventView:
    event: store.EventRow
    corrections: tuple[store.CorrectionRow, ...]
    # JSON text (exact numbers) of the properties usage sees; None once retracted.
    effective_properties_json: str | None

    @property
    def retracted(self) -> bool:
        return self.effective_properties_json is None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventQuery:
    customer: str | None = None
    type: str | None = None
    start: datetime | None = None  # inclusive; default: `end` less EVENTS_WINDOW_DAYS_DEFAULT
    end: datetime | None = None  # exclusive; default: a day from now (beyond any allowed skew)
    cursor: str | None = None
    limit: int = EVENTS_PAGE_LIMIT_DEFAULT


@dataclass(frozen=True, slots=True)
class EventPage:
    items: tuple[EventView, ...]
    next_cursor: str | None  # None: no more events

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


def get_event(engine: Engine, tenant_id: uuid.UUID, event_id: str) -> EventView:
    with psycopg_transaction(engine) as connection:
        row = store.find_event(connection, tenant_id, event_id)
        if row is None:
            raise Rejected.because("event_not_found", "no such event for this tenant", "id")
        corrections = store.corrections_of(connection, tenant_id, event_id)
    return _view(row, corrections)


def list_events(engine: Engine, clock: Clock, tenant_id: uuid.UUID, query: EventQuery) -> EventPage:
    if not 1 <= query.limit <= EVENTS_PAGE_LIMIT_MAX:
        raise Rejected.because("limit_out_of_range", f"limit must be 1 to {EVENTS_PAGE_LIMIT_MAX}", "limit")
    end = query.end or clock.now() + timedelta(days=1)
    start = query.start or end - timedelta(days=EVENTS_WINDOW_DAYS_DEFAULT)
    if start >= end:
        raise Rejected.because("time_range_invalid", "from must be before to", "from")
    if query.customer is None and end - start > timedelta(days=EVENTS_WINDOW_DAYS_MAX):
        raise Rejected.because(
            "time_range_too_long",
            f"without a customer, list at most {EVENTS_WINDOW_DAYS_MAX} days of events at a time",
            "from",
        )
    after = decode_cursor(query.cursor) if query.cursor is not None else None
    with psycopg_transaction(engine) as connection:
        rows = store.list_events(
            connection,
            tenant_id,
            customer=query.customer,
            type=query.type,
            start=start,
            end=end,
            after=after,
            limit=query.limit + 1,
        )
        has_more = len(rows) > query.limit
        rows = rows[: query.limit]
        corrections = store.corrections_of_events(connection, tenant_id, [row.event_id for row in rows])
    items = tuple(_view(row, corrections.get(row.event_id, [])) for row in rows)
    next_cursor = encode_cursor(rows[-1].timestamp, rows[-1].event_id) if has_more and rows else None
    return EventPage(items=items, next_cursor=next_cursor)


def _view(row: store.EventRow, corrections: list[store.CorrectionRow]) -> EventView:
    core = [
        rules.Correction(kind=item.kind, properties_json=item.properties_json)
        for item in corrections
        if item.kind == "retract" or item.properties_json is not None
    ]
    effective = rules.effective_properties(row.properties_json, core)
    return EventView(event=row, corrections=tuple(corrections), effective_properties_json=effective)


def encode_cursor(timestamp: datetime, event_id: str) -> str:
    """An opaque keyset cursor: the last listed event's timestamp and id (also for a line's events)."""
    text = json.dumps([timestamp.isoformat(), event_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        timestamp_text, event_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        timestamp = datetime.fromisoformat(timestamp_text)
        if timestamp.tzinfo is None or not isinstance(event_id, str):
            raise ValueError("not a cursor")
    except (ValueError, TypeError) as error:
        raise Rejected.because(
            "cursor_invalid", "starting_after must be a next_cursor from a listing", "starting_after"
        ) from error
    return timestamp, event_id
