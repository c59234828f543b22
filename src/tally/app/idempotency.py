"""Idempotent requests: the first request with a key runs; repeats get its stored response.

One row per (tenant, key). Claiming a key inserts it in flight, locked for `lock_seconds`. The
request then runs; its response is stored (2xx and 4xx) or the row deleted (5xx, so the client may
retry). A repeat with the same fingerprint gets the stored response; with another fingerprint,
`idempotency_key_reused`; while the first still runs, `idempotency_request_in_progress`. An
in-flight row whose lock has expired belonged to a crashed or hung server and is taken over. Rows
older than the retention period are treated as absent and purged by
`purge_expired_idempotent_requests`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, RowMapping

from tally.adapters.postgres import idempotency as rows
from tally.core.rejections import Rejected

KEY_LENGTH_MAX = 255
PURGE_BATCH_SIZE = 5000
_CLAIM_ATTEMPTS_MAX = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class IdempotentRequest:
    """What identifies one attempt: the key, and a fingerprint of method, path and body."""

    tenant_id: uuid.UUID
    key: str
    method: str
    path: str
    fingerprint: bytes

    def __post_init__(self) -> None:
        if not 1 <= len(self.key) <= KEY_LENGTH_MAX:
            raise Rejected.because(
                "idempotency_key_invalid",
                f"an Idempotency-Key has 1 to {KEY_LENGTH_MAX} characters",
                "Idempotency-Key",
            )


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    headers: list[list[str]]
    body: bytes


@dataclass(frozen=True, slots=True)
class Claimed:
    """This request owns the key; `lock_token` proves it when completing or releasing."""

    lock_token: datetime


@dataclass(frozen=True, slots=True)
class Replay:
    response: StoredResponse


def claim_idempotency_key(
    engine: Engine,
    request: IdempotentRequest,
    *,
    now: datetime,
    lock_seconds: int,
    retention_hours: int,
) -> Claimed | Replay:
    """Own the key, or get the stored response. Raises `Rejected` for reuse and in-flight repeats."""
    locked_until = now + timedelta(seconds=lock_seconds)
    expired_before = now - timedelta(hours=retention_hours)
    for _ in range(_CLAIM_ATTEMPTS_MAX):
        with engine.begin() as connection:
            inserted = rows.insert_in_flight(
                connection,
                tenant_id=request.tenant_id,
                key=request.key,
                method=request.method,
                path=request.path,
                fingerprint=request.fingerprint,
                now=now,
                locked_until=locked_until,
            )
            if inserted:
                return Claimed(lock_token=locked_until)
            existing = rows.lock(connection, request.tenant_id, request.key)
            if existing is None:
                continue  # deleted (5xx or purge) between the insert and the lock: try again
            replay = _replay_or_take_over(existing, request, now=now, expired_before=expired_before)
            if replay is not None:
                return replay
            rows.take_over(
                connection,
                tenant_id=request.tenant_id,
                key=request.key,
                method=request.method,
                path=request.path,
                fingerprint=request.fingerprint,
                now=now,
                locked_until=locked_until,
            )
            return Claimed(lock_token=locked_until)
    raise Rejected.because(
        "idempotency_request_in_progress", "another request with this Idempotency-Key is being processed"
    )


def _replay_or_take_over(
    existing: RowMapping, request: IdempotentRequest, *, now: datetime, expired_before: datetime
) -> Replay | None:
    """The stored response, or None to take the row over. Checks run in a fixed order, so one
    repeat always gets the same answer."""
    if existing["created_at"] < expired_before:
        return None  # past retention: as if the key was never used
    same_request = (
        existing["method"] == request.method
        and existing["path"] == request.path
        and bytes(existing["request_fingerprint"]) == request.fingerprint
    )
    if not same_request:
        raise Rejected.because(
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request (method, path, body or API key differ)",
            "Idempotency-Key",
        )
    if existing["state"] == "completed":
        status, headers, body = rows.stored_response(existing)
        return Replay(StoredResponse(status=status, headers=headers, body=body))
    if existing["locked_until"] is not None and existing["locked_until"] > now:
        raise Rejected.because(
            "idempotency_request_in_progress", "a request with this Idempotency-Key is still being processed"
        )
    return None  # the owner's lock expired: it crashed or hung; take over


def complete_idempotent_request(
    engine: Engine, request: IdempotentRequest, lock_token: datetime, response: StoredResponse, *, now: datetime
) -> bool:
    """Store the response for replays. False: the row was taken over meanwhile (nothing stored)."""
    with engine.begin() as connection:
        return rows.complete(
            connection,
            tenant_id=request.tenant_id,
            key=request.key,
            locked_until=lock_token,
            status=response.status,
            headers=response.headers,
            body=response.body,
            now=now,
        )


def release_idempotent_request(engine: Engine, request: IdempotentRequest, lock_token: datetime) -> bool:
    """Forget an in-flight key (the request failed with a 5xx), so a retry runs again."""
    with engine.begin() as connection:
        return rows.delete_in_flight(connection, tenant_id=request.tenant_id, key=request.key, locked_until=lock_token)


def purge_expired_idempotent_requests(engine: Engine, now: datetime, *, retention_hours: int = 24) -> int:
    """Delete rows past retention (pass `settings.idempotency_retention_hours`); returns how many.

    Deletes in batches, each its own short transaction, so it never holds many locks for long.
    """
    cutoff = now - timedelta(hours=retention_hours)
    total = 0
    while True:
        with engine.begin() as connection:
            deleted = rows.delete_created_before(connection, cutoff, PURGE_BATCH_SIZE)
        total += deleted
        if deleted < PURGE_BATCH_SIZE:
            return total
