"""`Ingestor`: track events from application code; a background thread sends them in batches.

    with Ingestor("http://localhost:8000", "tally_sk_…") as ingestor:
        ingestor.track(customer="acme", type="tokens", properties={"tokens": 1200})

What it promises:

- **Idempotent retries.** An event's id is fixed by `track` (given, or a new UUIDv7) and every retry
  re-sends the same id, so a batch that reached the server before the connection broke is counted
  once (the resend answers `duplicate`).
- **Bounded memory.** At most `max_buffered` events wait or travel at any time. When that many are
  pending, `track` blocks for up to `block_timeout_s` seconds for the sender to catch up, then raises
  `BufferFullError` (the event was not taken; calling `track` again later is safe). Pass
  `block_timeout_s=0` to raise at once instead of blocking.
- **Nothing dropped silently.** Events the server refuses (`conflict`, `rejected`) go to
  `on_refused` (default: logged as warnings and kept in `refused`, the latest 1,000). Batches that
  cannot be delivered after `max_retries` (server down) or that the server refuses as a whole (bad
  key) go to `on_failed` with their encoded events, to be stored and sent again later; without that
  callback they are logged as errors and `close()` raises `DeliveryFailedError`.
- **Flushed at the end.** `close()`, leaving the `with` block, and interpreter exit (`atexit`) all
  send what is pending first. `flush()` sends now and waits.
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from tally.client._client import (
    EVENTS_PER_REQUEST_MAX,
    Client,
    Event,
    EventResult,
    IngestResponse,
    TallyError,
)
from tally.client._ids import new_event_id

logger = logging.getLogger("tally.client")

REFUSED_KEPT_MAX = 1_000
SENDERS_MAX = 16
CLOSE_TIMEOUT_S = 30.0


class BufferFullError(TallyError):
    """`max_buffered` events are pending and none left within `block_timeout_s`: the server is slow
    or unreachable. The event passed to `track` was not taken."""


class IngestorClosedError(TallyError):
    """`track` after `close()`."""


@dataclass(frozen=True, slots=True)
class FailedBatch:
    """Events that could not be delivered. `events_json` are the exact encoded events (one JSON object
    each, ids included): store them and send them again later, e.g. with `tally events import`."""

    ids: tuple[str, ...]
    events_json: tuple[str, ...]
    error: Exception


class DeliveryFailedError(TallyError):
    """`close()` found batches that were never delivered and no `on_failed` callback to hand them to."""

    def __init__(self, failed_events: int) -> None:
        super().__init__(f"{failed_events} events could not be delivered (see the log for their ids)")
        self.failed_events = failed_events


@dataclass(slots=True)
class IngestStats:
    """Counts since the ingestor started. `accepted + duplicate` events are stored exactly once."""

    tracked: int = 0
    accepted: int = 0
    duplicate: int = 0
    conflict: int = 0
    rejected: int = 0
    failed: int = 0
    requests: int = 0
    retries: int = 0

    def copy(self) -> IngestStats:
        return IngestStats(**{name: getattr(self, name) for name in self.__slots__})


@dataclass(slots=True)
class _Pending:
    ids: collections.deque[str] = field(default_factory=collections.deque)
    events_json: collections.deque[str] = field(default_factory=collections.deque)


class Ingestor:
    """Batches tracked events and sends them from background threads. Thread-safe."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        batch_size: int = 1_000,
        flush_interval_s: float = 1.0,
        max_buffered: int = 100_000,
        max_retries: int = 8,
        block_timeout_s: float = 30.0,
        senders: int = 1,
        gzip: bool = True,
        timeout_s: float = 60.0,
        on_refused: Callable[[EventResult], None] | None = None,
        on_failed: Callable[[FailedBatch], None] | None = None,
        transport: httpx.BaseTransport | None = None,
        client: Client | None = None,
    ) -> None:
        if not 1 <= batch_size <= EVENTS_PER_REQUEST_MAX:
            raise ValueError(f"batch_size must be 1 to {EVENTS_PER_REQUEST_MAX}, not {batch_size}")
        if max_buffered < batch_size:
            raise ValueError("max_buffered must be at least batch_size")
        if flush_interval_s <= 0 or block_timeout_s < 0:
            raise ValueError("flush_interval_s must be positive and block_timeout_s not negative")
        if not 1 <= senders <= SENDERS_MAX:
            raise ValueError(f"senders must be 1 to {SENDERS_MAX}, not {senders}")
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_buffered = max_buffered
        self.block_timeout_s = block_timeout_s
        self._owns_client = client is None
        self._client = client or Client(
            base_url, api_key, timeout_s=timeout_s, max_retries=max_retries, gzip=gzip, transport=transport
        )
        self._on_refused = on_refused
        self._on_failed = on_failed
        self.refused: collections.deque[EventResult] = collections.deque(maxlen=REFUSED_KEPT_MAX)
        self._stats = IngestStats()
        self._unreported_failures = 0

        self._condition = threading.Condition()
        self._pending = _Pending()
        self._oldest_pending_at = 0.0  # monotonic time the oldest waiting event was tracked
        self._in_flight = 0
        # Sequence numbers: events are numbered as tracked; a flush waits until all below its target
        # are answered. `_in_flight_starts` holds the first number of each batch on the wire.
        self._taken_through = 0
        self._in_flight_starts: set[int] = set()
        self._flush_through = 0
        self._closing = False
        self._closed = False
        self._threads = [
            threading.Thread(target=self._send_loop, name=f"tally-ingestor-{index}", daemon=True)
            for index in range(senders)
        ]
        for thread in self._threads:
            thread.start()
        atexit.register(self._close_at_exit)

    def __enter__(self) -> Ingestor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        # Leaving on an exception: still deliver, but do not hide that exception behind our own.
        self.close(raise_on_failure=exc_type is None)

    @property
    def stats(self) -> IngestStats:
        with self._condition:
            return self._stats.copy()

    def track(
        self,
        *,
        customer: str,
        type: str,
        id: str | None = None,
        timestamp: datetime | str | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> str:
        """Queue one event; returns its id. `timestamp` defaults to now (UTC). Raises `ValueError`
        or `TypeError` at once for what cannot be encoded (naive datetimes, NaN, sets, …)."""
        event_id = id or new_event_id()
        values: dict[str, Any] = {"customer": customer, "type": type, "id": event_id, "properties": properties or {}}
        if timestamp is not None:
            values["timestamp"] = timestamp
        # Encoded now: a bad value fails in the caller's thread, and later changes to `properties`
        # cannot change what is sent.
        event_json = Event(**values).to_json()
        with self._condition:
            if self._closing:
                raise IngestorClosedError("this ingestor is closed")
            if not self._condition.wait_for(self._has_room, timeout=self.block_timeout_s):
                raise BufferFullError(
                    f"{self.max_buffered} events are waiting to be sent (max_buffered); none left within "
                    f"{self.block_timeout_s}s"
                )
            was_empty = not self._pending.ids
            if was_empty:
                self._oldest_pending_at = time.monotonic()
            self._pending.ids.append(event_id)
            self._pending.events_json.append(event_json)
            self._stats.tracked += 1
            # Wake the senders when a batch is full, or to start the flush-interval clock.
            if was_empty or len(self._pending.ids) >= self.batch_size:
                self._condition.notify_all()
        return event_id

    def flush(self, timeout_s: float | None = None) -> bool:
        """Send everything tracked so far now, and wait until the server has answered for it (or it
        failed). Returns False if `timeout_s` passed first."""
        with self._condition:
            target = self._stats.tracked
            self._flush_through = max(self._flush_through, target)
            self._condition.notify_all()
            return self._condition.wait_for(lambda: self._answered_through() >= target, timeout=timeout_s)

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S, *, raise_on_failure: bool = True) -> IngestStats:
        """Send what is pending, stop the senders, and return the final counts. Idempotent.

        Raises `DeliveryFailedError` if some events could not be delivered and there is no `on_failed`
        callback (with `raise_on_failure`)."""
        with self._condition:
            already_closed = self._closed
            self._closing = True
            self._closed = True
            self._condition.notify_all()
        if not already_closed:
            atexit.unregister(self._close_at_exit)
            deadline = time.monotonic() + timeout_s
            for thread in self._threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            with self._condition:
                left_ids = list(self._pending.ids)
                left_json = list(self._pending.events_json)
                self._pending = _Pending()
            if left_ids:
                self._fail(left_ids, left_json, TallyError(f"not sent within the close timeout of {timeout_s}s"))
            if self._owns_client and not any(thread.is_alive() for thread in self._threads):
                self._client.close()
        with self._condition:
            unreported, self._unreported_failures = self._unreported_failures, 0
            stats = self._stats.copy()
        if unreported and raise_on_failure:
            raise DeliveryFailedError(unreported)
        return stats

    def _close_at_exit(self) -> None:
        try:
            self.close(raise_on_failure=False)
        except Exception:  # at exit there is no one left to raise to
            logger.exception("tally ingestor: closing at exit failed")

    # The sender side.

    def _has_room(self) -> bool:
        return len(self._pending.ids) + self._in_flight < self.max_buffered

    def _answered_through(self) -> int:
        """Every event numbered below this has been answered (or failed)."""
        taken = self._taken_through
        return min(self._in_flight_starts, default=taken)

    def _batch_due(self) -> bool:
        waiting = len(self._pending.ids)
        if waiting == 0:
            return False
        return (
            waiting >= self.batch_size
            or self._closing
            or self._taken_through < self._flush_through
            or time.monotonic() - self._oldest_pending_at >= self.flush_interval_s
        )

    def _send_loop(self) -> None:
        while True:
            with self._condition:
                while not self._batch_due():
                    if self._closing and not self._pending.ids:
                        return
                    wait_s = None
                    if self._pending.ids:
                        wait_s = max(0.0, self._oldest_pending_at + self.flush_interval_s - time.monotonic())
                    self._condition.wait(wait_s)
                count = min(self.batch_size, len(self._pending.ids))
                ids = [self._pending.ids.popleft() for _ in range(count)]
                events_json = [self._pending.events_json.popleft() for _ in range(count)]
                if self._pending.ids:
                    self._oldest_pending_at = time.monotonic()
                start = self._taken_through
                self._taken_through += count
                self._in_flight += count
                self._in_flight_starts.add(start)
            try:
                self._send(ids, events_json)
            finally:
                with self._condition:
                    self._in_flight -= count
                    self._in_flight_starts.discard(start)
                    self._condition.notify_all()

    def _send(self, ids: list[str], events_json: list[str]) -> None:
        try:
            response = self._client.ingest_encoded(ids, events_json)
        except Exception as error:  # every failure is handed over, never dropped
            self._fail(ids, events_json, error)
            return
        self._record(response)

    def _record(self, response: IngestResponse) -> None:
        refused = response.refused
        with self._condition:
            self._stats.requests += 1
            self._stats.retries += response.attempts - 1
            for result in response.results:
                setattr(self._stats, result.status, getattr(self._stats, result.status) + 1)
            if self._on_refused is None:
                self.refused.extend(refused)
        for result in refused:
            if self._on_refused is None:
                logger.warning(
                    "tally refused event %s: %s %s (%s)", result.id, result.status, result.code, result.field
                )
                continue
            try:
                self._on_refused(result)
            except Exception:
                logger.exception("tally ingestor: the on_refused callback failed for event %s", result.id)

    def _fail(self, ids: list[str], events_json: list[str], error: Exception) -> None:
        with self._condition:
            self._stats.failed += len(ids)
            if self._on_failed is None:
                self._unreported_failures += len(ids)
        if self._on_failed is not None:
            try:
                self._on_failed(FailedBatch(ids=tuple(ids), events_json=tuple(events_json), error=error))
                return
            except Exception:
                logger.exception("tally ingestor: the on_failed callback failed")
                with self._condition:
                    self._unreported_failures += len(ids)
        logger.error("tally ingestor: %d events not delivered (%s); ids: %s", len(ids), error, ", ".join(ids))
