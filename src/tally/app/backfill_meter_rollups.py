"""Backfill: build a new meter version's rollups from the retained raw events, set-based.

A version starts `backfilling` (its usage is then computed from raw events). This takes the oldest
such version no other worker is on, holds its tenant's rollup lock exclusively (so no rollup
transaction of that tenant runs meanwhile), recomputes all its rollups from the effective events of
every batch no longer queued, and marks it `ready` — all in one transaction. Batches still queued
are rolled up by the rollup worker once the version is ready.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import meters as catalog
from tally.adapters.postgres import rollups
from tally.adapters.postgres.connections import psycopg_transaction, run_in_transaction


@dataclass(frozen=True, slots=True)
class BackfillOutcome:
    version_id: int
    meter_code: str
    version: int
    rollup_rows: int
    duration_ms: int


def backfill_next_version(engine: Engine, clock: Clock) -> BackfillOutcome | None:
    """Backfill one pending version; None when there is none (or all are being done elsewhere)."""
    with psycopg_transaction(engine) as connection:
        if not catalog.backfill_pending(connection):
            return None
        # Whole-tenant plans depend on the planner knowing how small the queue and the corrections are.
        rollups.refresh_statistics(connection)

    def work(connection: psycopg.Connection[Any]) -> BackfillOutcome | None:
        version = catalog.next_backfill(connection)
        if version is None:
            return None
        started = time.monotonic_ns()
        rollups.lock_tenants(connection, [version.tenant_id], exclusive=True)
        rows = rollups.rebuild_version(
            connection, version.tenant_id, rollups.compile_meter(version.id, version.definition)
        )
        catalog.mark_ready(connection, version.id, clock.now())
        return BackfillOutcome(
            version.id, version.code, version.version, rows, (time.monotonic_ns() - started) // 1_000_000
        )

    return run_in_transaction(engine, work)


def backfill_pending_versions(engine: Engine, clock: Clock, *, versions_max: int | None = 100) -> list[BackfillOutcome]:
    """Backfill pending versions until none is left (at most `versions_max`; None: no limit)."""
    done: list[BackfillOutcome] = []
    while versions_max is None or len(done) < versions_max:
        outcome = backfill_next_version(engine, clock)
        if outcome is None:
            break
        done.append(outcome)
    return done
