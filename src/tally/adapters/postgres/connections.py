"""Unit-of-work helpers: a psycopg transaction from the SQLAlchemy pool, retried when PostgreSQL asks."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import errors
from sqlalchemy import Engine

T = TypeVar("T")

# Transient failures that a fresh attempt resolves: PostgreSQL itself says so.
RETRYABLE = (errors.SerializationFailure, errors.DeadlockDetected, errors.LockNotAvailable)
ATTEMPTS_MAX = 12


class RetryRequested(Exception):
    """Raised inside a unit of work to roll back and run it again (e.g. a lost idempotency race)."""


@contextmanager
def psycopg_transaction(engine: Engine) -> Iterator[psycopg.Connection[Any]]:
    """One database transaction on a pooled connection: commit on success, roll back on any error."""
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        if not isinstance(raw, psycopg.Connection):  # pragma: no cover - configuration error
            raise TypeError("tally needs the psycopg 3 driver")
        try:
            yield raw
            raw.commit()
        except BaseException:
            if raw.closed or raw.broken:
                # A dead connection (server restart, network): drop it from the pool instead of
                # checking every connection with a round trip before use.
                connection.invalidate()
            else:
                raw.rollback()
            raise


def run_in_transaction(engine: Engine, work: Callable[[psycopg.Connection[Any]], T]) -> T:
    """Run `work` in a transaction, again from scratch on deadlocks, serialization failures and
    `RetryRequested`, with jittered backoff. Anything else propagates after rollback."""
    for attempt in range(1, ATTEMPTS_MAX + 1):
        try:
            with psycopg_transaction(engine) as connection:
                return work(connection)
        except (*RETRYABLE, RetryRequested):
            if attempt == ATTEMPTS_MAX:
                raise
            time.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 8)))
    raise AssertionError("unreachable")  # pragma: no cover


def run_pipelined(engine: Engine, work: Callable[[psycopg.Connection[Any]], T]) -> T:
    """Run `work` on a pooled connection in autocommit mode, again on deadlocks and serialization
    failures. For work that sends its statements in one pipeline and syncs once: the statements up
    to the sync are one implicit database transaction (all or nothing), sent in one round trip, so
    no lock is held while the client thinks."""
    for attempt in range(1, ATTEMPTS_MAX + 1):
        try:
            with engine.connect() as connection:
                raw = connection.connection.driver_connection
                if not isinstance(raw, psycopg.Connection):  # pragma: no cover - configuration error
                    raise TypeError("tally needs the psycopg 3 driver")
                raw.autocommit = True
                try:
                    return work(raw)
                except BaseException:
                    if raw.closed or raw.broken:
                        connection.invalidate()
                    raise
                finally:
                    if not (raw.closed or raw.broken):
                        raw.autocommit = False
        except RETRYABLE:
            if attempt == ATTEMPTS_MAX:
                raise
            time.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 8)))
    raise AssertionError("unreachable")  # pragma: no cover
