"""`Client`: one HTTP connection pool to a tally server, and `ingest(events)` with safe retries.

Retrying an ingest request is always safe because every event carries its own id: the server
stores an id once and answers a resend as a `duplicate`. So the client retries network errors,
5xx and 429 with exponential backoff and full jitter, re-sending the very same body.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from tally.client._encoding import encode_value, format_timestamp
from tally.client._ids import new_event_id

logger = logging.getLogger("tally.client")

EventStatus = Literal["accepted", "duplicate", "conflict", "rejected"]
STATUSES: tuple[EventStatus, ...] = ("accepted", "duplicate", "conflict", "rejected")
# The server's limit on events per request.
EVENTS_PER_REQUEST_MAX = 10_000
INGEST_PATH = "/v1/events"
# Retries: delays grow 0.1 s, 0.2 s, 0.4 s … up to 10 s, each drawn uniformly below its cap.
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 10.0
RETRY_AFTER_MAX_S = 60.0
_RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class TallyError(Exception):
    """Anything the client reports; catch this to catch them all."""


class RequestRefusedError(TallyError):
    """The server refused the whole request (a 4xx other than 429): resending it would not help.

    `code` is the problem's stable code (`api_key_invalid`, `request_body_too_large`, …)."""

    def __init__(self, status: int, code: str, detail: str, request_id: str | None = None) -> None:
        super().__init__(f"HTTP {status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.request_id = request_id


class ServerUnavailableError(TallyError):
    """Every attempt failed with a network error, a 5xx or a 429; the events may or may not be stored.
    Sending them again is safe (same ids)."""

    def __init__(self, attempts: int, last_error: str) -> None:
        super().__init__(f"gave up after {attempts} attempts; last: {last_error}")
        self.attempts = attempts
        self.last_error = last_error


@dataclass(frozen=True, slots=True)
class Event:
    """One usage event. `id` is the idempotency key: the same id is counted once, forever."""

    customer: str
    type: str
    id: str = field(default_factory=new_event_id)
    timestamp: datetime | str = field(default_factory=lambda: datetime.now(UTC))
    properties: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return (
            f'{{"id":{encode_value(self.id)},"customer":{encode_value(self.customer)},'
            f'"type":{encode_value(self.type)},"timestamp":{encode_value(format_timestamp(self.timestamp))},'
            f'"properties":{encode_value(self.properties)}}}'
        )


def event_from(value: Event | Mapping[str, Any]) -> Event:
    """An `Event` from itself or from a mapping with the same keys (id and timestamp optional)."""
    if isinstance(value, Event):
        return value
    unknown = set(value) - {"id", "customer", "type", "timestamp", "properties"}
    if unknown:
        raise ValueError(f"unknown event fields: {', '.join(sorted(unknown))}")
    return Event(
        customer=value["customer"],
        type=value["type"],
        id=value.get("id") or new_event_id(),
        timestamp=value.get("timestamp") or datetime.now(UTC),
        properties=value.get("properties") or {},
    )


@dataclass(frozen=True, slots=True)
class EventResult:
    """What the server did with one event. `accepted` and `duplicate` mean stored (exactly once);
    `conflict` (the id was used by a different event) and `rejected` (invalid) mean not stored."""

    id: str | None
    status: EventStatus
    index: int
    code: str | None = None
    field: str | None = None
    message: str | None = None
    late: bool = False  # accepted into a period already invoiced (the server flags it for billing)

    @property
    def stored(self) -> bool:
        return self.status in ("accepted", "duplicate")


@dataclass(frozen=True, slots=True)
class IngestResponse:
    """The per-event results of one request, in the order the events were sent."""

    results: tuple[EventResult, ...]
    attempts: int = 1

    def count(self, status: EventStatus) -> int:
        return sum(1 for result in self.results if result.status == status)

    @property
    def refused(self) -> tuple[EventResult, ...]:
        """The events that were not stored: conflicts and rejections."""
        return tuple(result for result in self.results if not result.stored)


def encode_batch(events_json: Sequence[str], *, compress: bool) -> tuple[bytes, dict[str, str]]:
    """The request body (a JSON array of encoded events) and its headers. Level-1 gzip: most of the
    size win for little CPU."""
    body = ("[" + ",".join(events_json) + "]").encode()
    headers = {"Content-Type": "application/json"}
    if compress:
        body = gzip.compress(body, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
    return body, headers


def parse_results(payload: Any, ids: Sequence[str]) -> tuple[EventResult, ...]:
    """Per-event results from the server's answer, checked against what was sent."""
    items = payload.get("results") if isinstance(payload, Mapping) else None
    if not isinstance(items, list) or len(items) != len(ids):
        found = len(items) if isinstance(items, list) else "no"
        raise TallyError(f"the server answered {found} results for {len(ids)} events")
    results = []
    for index, (item, sent_id) in enumerate(zip(items, ids, strict=True)):
        status = item.get("result")
        if status not in STATUSES:
            raise TallyError(f"unknown event result {status!r} in the server's answer")
        results.append(
            EventResult(
                id=item.get("id") or sent_id,
                status=status,
                index=index,
                code=item.get("code"),
                field=item.get("field"),
                message=item.get("message"),
                late=bool(item.get("late")),
            )
        )
    return tuple(results)


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), RETRY_AFTER_MAX_S)
    except ValueError:
        return None  # an HTTP date: fall back to the backoff


def backoff_s(
    attempt: int, rng: random.Random, *, base_s: float = BACKOFF_BASE_S, cap_s: float = BACKOFF_CAP_S
) -> float:
    """Full jitter: uniform in [0, min(cap, base · 2^(attempt-1))]."""
    return rng.uniform(0, min(cap_s, base_s * 2 ** min(attempt - 1, 32)))


class Client:
    """A synchronous tally API client. Thread-safe: one instance can serve many threads.

    with Client("http://localhost:8000", "tally_sk_…") as client:
        response = client.ingest([Event(customer="acme", type="tokens", properties={"n": 1200})])
        for refused in response.refused: ...
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 60.0,
        max_retries: int = 8,
        gzip: bool = True,
        backoff_base_s: float = BACKOFF_BASE_S,
        backoff_cap_s: float = BACKOFF_CAP_S,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        if not 0 < backoff_base_s <= backoff_cap_s:
            raise ValueError("backoff_base_s must be positive and at most backoff_cap_s")
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.gzip = gzip
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "tally-python-client"},
            timeout=timeout_s,
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def ingest(self, events: Iterable[Event | Mapping[str, Any]]) -> IngestResponse:
        """Send up to 10,000 events in one request; retried until answered or `max_retries` run out.

        Raises `RequestRefusedError` (the whole request was refused: bad key, body too large, …) or
        `ServerUnavailableError` (no answer after every retry: safe to send the same events again).
        Per-event refusals are not errors: they are in `response.refused`."""
        batch = [event_from(event) for event in events]
        if not batch:
            return IngestResponse(results=())
        if len(batch) > EVENTS_PER_REQUEST_MAX:
            raise ValueError(f"at most {EVENTS_PER_REQUEST_MAX} events per request, not {len(batch)}")
        return self.ingest_encoded([event.id for event in batch], [event.to_json() for event in batch])

    def ingest_encoded(self, ids: Sequence[str], events_json: Sequence[str]) -> IngestResponse:
        """`ingest` for events already encoded (`Event.to_json()`), as the `Ingestor` keeps them."""
        body, headers = encode_batch(events_json, compress=self.gzip)
        payload, attempts = self._post_with_retries(INGEST_PATH, body, headers)
        return IngestResponse(results=parse_results(payload, ids), attempts=attempts)

    def _post_with_retries(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[Any, int]:
        last_error = ""
        for attempt in range(1, self.max_retries + 2):
            delay_s: float | None = None
            try:
                response = self._http.post(path, content=body, headers=headers)
            except httpx.TransportError as error:
                last_error = f"{type(error).__name__}: {error}"
            else:
                if response.is_success:
                    return response.json(), attempt
                if response.status_code not in _RETRYABLE_STATUSES:
                    raise _refused(response)
                last_error = f"HTTP {response.status_code}"
                delay_s = _retry_after_s(response)
            if attempt > self.max_retries:
                break
            if delay_s is None:
                with self._rng_lock:
                    delay_s = backoff_s(attempt, self._rng, base_s=self.backoff_base_s, cap_s=self.backoff_cap_s)
            logger.info("tally request failed (%s); retry %d in %.2fs", last_error, attempt, delay_s)
            self._sleep(delay_s)
        raise ServerUnavailableError(self.max_retries + 1, last_error)


def _refused(response: httpx.Response) -> RequestRefusedError:
    try:
        problem = response.json()
    except json.JSONDecodeError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    return RequestRefusedError(
        response.status_code,
        str(problem.get("code") or f"http_{response.status_code}"),
        str(problem.get("detail") or response.text[:200]),
        problem.get("request_id"),
    )
