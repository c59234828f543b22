"""Ingest usage events, exactly once: one batch (up to 10,000 events), one database transaction.

  decide — each raw event is parsed and validated by the core (`parse_event`), against the timestamp
           window of now; ids repeated within the batch are set aside (the first occurrence is the
           one written);
  apply  — one statement registers the new ids in the forever dedup registry, stores their events,
           records the batch and queues it for the rollups; late events are flagged; commit;
  answer — one outcome per input event, in input order: `accepted`, `duplicate` (this id is already
           stored with the same content), `conflict` (already stored with different content: the
           original is kept) or `rejected` (with a code and field).

A batch with invalid events stores the valid ones. The answer is given only after the commit, so
an `accepted` or `duplicate` event is durable. Concurrent batches sharing ids are safe: the registry's
primary key decides which one stores an id; the others answer duplicate or conflict.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, NamedTuple

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_ids
from tally.adapters.postgres import events as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.core.metering.events import (
    EVENTS_PER_BATCH_MAX,
    Event,
    TimestampWindow,
    check_window,
    parse_event,
    raw_event_id,
)
from tally.core.rejections import InvariantViolation, Rejected, Rejection
from tally.settings import Settings

__all__ = [
    "EVENTS_PER_BATCH_MAX",
    "EventOutcome",
    "IngestCounts",
    "IngestOptions",
    "IngestResult",
    "OutcomeKind",
    "ingest_events",
    "ingest_events_counted",
]

OutcomeKind = Literal["accepted", "duplicate", "conflict", "rejected"]

HORIZON_DAYS_DEFAULT = 90
FUTURE_SKEW_SECONDS_DEFAULT = 300


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestOptions:
    """How far into the past (`horizon_days`) and the future (`future_skew_seconds`) an event's
    timestamp may be, measured from the clock's now."""

    horizon_days: int = HORIZON_DAYS_DEFAULT
    future_skew_seconds: int = FUTURE_SKEW_SECONDS_DEFAULT

    def __post_init__(self) -> None:
        if self.horizon_days < 1 or self.future_skew_seconds < 0:
            raise ValueError("horizon_days must be at least 1 and future_skew_seconds at least 0")

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestOptions:
        return cls(horizon_days=settings.ingest_horizon_days, future_skew_seconds=settings.ingest_future_skew_seconds)

    def window(self, now: datetime) -> TimestampWindow:
        return TimestampWindow(
            earliest=now - timedelta(days=self.horizon_days),
            latest=now + timedelta(seconds=self.future_skew_seconds),
        )


class EventOutcome(NamedTuple):
    """What happened to one input event. `event_id` is None for a rejected event without a usable id;
    `late`: accepted into a period already invoiced (flagged in `late_usage`). A named tuple: one is
    made per event, up to 10,000 per request."""

    result: OutcomeKind
    event_id: str | None
    rejection: Rejection | None = None
    late: bool = False


# An `EventOutcome` made as the tuple it is, without its Python-level constructor: one is made per
# event, up to 10,000 per batch.
_new_outcome: Final = tuple.__new__


@dataclass(frozen=True, slots=True)
class IngestResult:
    """Outcomes in input order, with counts. `batch_id` is None when no event was new (then nothing
    was written: no batch row, nothing queued)."""

    batch_id: int | None
    received_at: datetime
    outcomes: tuple[EventOutcome, ...]
    accepted: int
    duplicate: int
    conflict: int
    rejected: int
    late: int


@dataclass(frozen=True, slots=True)
class IngestCounts:
    """A batch answered as counts (`ingest_events_counted`): the refused events alone (`conflict`,
    `rejected`) have an outcome, with their index in the input, in input order."""

    batch_id: int | None
    received_at: datetime
    accepted: int
    duplicate: int
    conflict: int
    rejected: int
    late: int
    refused: list[tuple[int, EventOutcome]]


def ingest_events(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    raw_events: Sequence[Mapping[str, Any]] | Sequence[Event] | Sequence[Any],
    *,
    source: Literal["api", "import"] = "api",
    options: IngestOptions = IngestOptions(),
) -> IngestResult:
    """Ingest up to `EVENTS_PER_BATCH_MAX` events in one transaction and answer once it committed.

    `raw_events`: decoded JSON objects (see `tally.core.metering.events.decode_json`: numbers must
    be int or Decimal, never float), or `Event`s made by `parse_event` (their timestamps are checked
    against the window again). Anything else in the sequence is rejected as `event_must_be_object`.
    Raises `Rejected` (`batch_too_large`) for more than `EVENTS_PER_BATCH_MAX` events.
    """
    received_at, parsed, first = _decide(clock, raw_events, options)
    written = _apply(engine, tenant_id, source, received_at=received_at, parsed=parsed, first=first)

    # answer: each occurrence is compared with the content that won its id.
    existing = written.existing if written else {}
    late_ids = {late[0] for late in written.late} if written else set()
    if len(first) == len(parsed) and not existing and not late_ids:
        # The usual batch: every event valid, new and not late.
        accepted = tuple(_new_outcome(EventOutcome, ("accepted", event_id, None, False)) for event_id in first)
        return IngestResult(
            batch_id=written.batch_id if written else None,
            received_at=received_at,
            outcomes=accepted,
            accepted=len(accepted),
            duplicate=0,
            conflict=0,
            rejected=0,
            late=0,
        )
    outcomes: list[EventOutcome] = []
    counts = {"accepted": 0, "duplicate": 0, "conflict": 0, "rejected": 0}
    for index, (raw, event) in enumerate(zip(raw_events, parsed, strict=True)):
        if isinstance(event, Rejection):
            outcome = _rejected(raw, event)
        else:
            event_id = event.id
            if event_id not in existing and first[event_id] == index:
                outcome = _new_outcome(EventOutcome, ("accepted", event_id, None, event_id in late_ids))
            elif event.content_hash == _winner(event_id, existing, parsed, first):
                outcome = _new_outcome(EventOutcome, ("duplicate", event_id, None, False))
            else:
                outcome = _conflict(event_id)
        counts[outcome.result] += 1
        outcomes.append(outcome)
    return IngestResult(
        batch_id=written.batch_id if written else None,
        received_at=received_at,
        outcomes=tuple(outcomes),
        accepted=counts["accepted"],
        duplicate=counts["duplicate"],
        conflict=counts["conflict"],
        rejected=counts["rejected"],
        late=len(late_ids),
    )


def ingest_events_counted(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    raw_events: Sequence[Mapping[str, Any]] | Sequence[Event] | Sequence[Any],
    *,
    source: Literal["api", "import"] = "import",
    options: IngestOptions = IngestOptions(),
) -> IngestCounts:
    """`ingest_events`, answered as counts and the refused events alone (what an import reports):
    the same decisions and the same write, without an outcome made for every event stored."""
    received_at, parsed, first = _decide(clock, raw_events, options)
    written = _apply(engine, tenant_id, source, received_at=received_at, parsed=parsed, first=first)
    existing = written.existing if written else {}
    refused: list[tuple[int, EventOutcome]] = []
    duplicate = conflict = rejected = 0
    if len(first) != len(parsed) or existing:
        # Only resends, repeats within the batch and rejections need a look each.
        for index, event in enumerate(parsed):
            if type(event) is not Event:
                refused.append((index, _rejected(raw_events[index], event)))  # type: ignore[arg-type]
                rejected += 1
                continue
            event_id = event.id
            if event_id not in existing and first[event_id] == index:
                continue  # accepted
            if event.content_hash == _winner(event_id, existing, parsed, first):
                duplicate += 1
            else:
                refused.append((index, _conflict(event_id)))
                conflict += 1
    return IngestCounts(
        batch_id=written.batch_id if written else None,
        received_at=received_at,
        accepted=len(first) - len(existing.keys() & first.keys()),
        duplicate=duplicate,
        conflict=conflict,
        rejected=rejected,
        late=len({late[0] for late in written.late}) if written else 0,
        refused=refused,
    )


def _decide(
    clock: Clock, raw_events: Sequence[Any], options: IngestOptions
) -> tuple[datetime, list[Event | Rejection], dict[str, int]]:
    """Validate each event against the window of now; `first`: each valid id, with the index of its
    first occurrence (the one written)."""
    if len(raw_events) > EVENTS_PER_BATCH_MAX:
        raise Rejected.because(
            "batch_too_large", f"a batch has at most {EVENTS_PER_BATCH_MAX} events, got {len(raw_events)}", "events"
        )
    received_at = clock.now()
    window = options.window(received_at)
    earliest, latest = window.earliest, window.latest
    parsed: list[Event | Rejection] = [
        # An `Event` already parsed (by the fast path of the API, say) needs only the window again.
        raw if type(raw) is Event and earliest <= raw.timestamp <= latest else _validate(raw, window)
        for raw in raw_events
    ]
    first: dict[str, int] = {}
    for index, event in enumerate(parsed):
        if type(event) is Event:
            first.setdefault(event.id, index)
    return received_at, parsed, first


def _apply(
    engine: Engine,
    tenant_id: uuid.UUID,
    source: Literal["api", "import"],
    *,
    received_at: datetime,
    parsed: list[Event | Rejection],
    first: dict[str, int],
) -> store.WrittenBatch | None:
    """Write the first occurrence of each id, in one transaction; None when there is none."""
    if not first:
        return None
    # Sorted by id (ids are unique here: sorting the ids compares strings, not tuples).
    unique: list[Event] = [parsed[first[event_id]] for event_id in sorted(first)]  # type: ignore[misc]
    return run_in_transaction(engine, lambda connection: _write(connection, tenant_id, received_at, source, unique))


def _winner(
    event_id: str, existing: dict[str, bytes | None], parsed: list[Event | Rejection], first: dict[str, int]
) -> bytes:
    """The content hash an occurrence of `event_id` is compared with: the one stored before this
    batch, or else that of its first occurrence here."""
    if event_id in existing:
        stored_hash = existing[event_id]
        if stored_hash is None:  # pragma: no cover - `_write` fills every hash in
            raise InvariantViolation(f"no stored content hash for event {event_id!r}")
        return stored_hash
    return parsed[first[event_id]].content_hash  # type: ignore[union-attr]


def _rejected(raw: object, rejection: Rejection) -> EventOutcome:
    return EventOutcome("rejected", raw.id if isinstance(raw, Event) else raw_event_id(raw), rejection)


def _conflict(event_id: str) -> EventOutcome:
    return EventOutcome(
        "conflict",
        event_id,
        Rejection(
            "exists_with_different_content",
            "an event with this id was already received with a different customer, type, timestamp "
            "or properties; the original is kept",
            "id",
        ),
    )


def _validate(raw: object, window: TimestampWindow) -> Event | Rejection:
    if isinstance(raw, Event):
        return check_window(raw.timestamp, window) or raw
    return parse_event(raw, window)


def _write(
    connection: psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    received_at: datetime,
    source: Literal["api", "import"],
    events: Sequence[Event],
) -> store.WrittenBatch:
    written = store.write_events(connection, tenant_id, received_at, source, events)
    racing = [event_id for event_id, stored_hash in written.existing.items() if stored_hash is None]
    if racing:
        # Registered by a transaction that committed while this statement ran: a new statement sees it.
        hashes = store.registered_hashes(connection, tenant_id, racing)
        missing = set(racing) - set(hashes)
        if missing:
            raise InvariantViolation(f"event ids neither inserted nor registered: {sorted(missing)[:5]}")
        written = store.WrittenBatch(
            batch_id=written.batch_id,
            event_count=written.event_count,
            existing={**written.existing, **hashes},
            late=written.late,
        )
    if written.late:
        ids = new_ids(len(written.late))
        store.flag_late_usage(
            connection,
            tenant_id,
            "late_event",
            received_at,
            [
                (id_, event_id, customer, timestamp)
                for id_, (event_id, customer, timestamp) in zip(ids, written.late, strict=True)
            ],
        )
    return written
