"""The worker's metering loops: the rollup loop drains the queue, the backfill loop readies versions."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

from tally.adapters.postgres.connections import psycopg_transaction
from tally.bootstrap import Tally
from tally.core.metering.aggregation import MeteredEvent
from tally.worker import registry
from tally.worker import runtime as _runtime  # noqa: F401 - registers the loops
from tally.worker.usage_loops import backfill_loop, rollup_loop
from tests.metering_support import make_meter, write_events


def _wait(condition: object, seconds: float = 10.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_loops_roll_up_and_backfill(tally: Tally, tenant_id: uuid.UUID) -> None:
    assert {loop.name for loop in registry.loops()} >= {"usage_rollups", "meter_backfills"}
    version = make_meter(tally.engine, tenant_id, "calls", backfill=False)
    batch = write_events(
        tally.engine, tenant_id, [MeteredEvent("a", "c", "call", datetime(2029, 1, 1, tzinfo=UTC), {})]
    )

    def queued() -> bool:
        with psycopg_transaction(tally.engine) as connection:
            return connection.execute("SELECT 1 FROM rollup_queue WHERE batch_id = %s", (batch,)).fetchone() is not None

    def ready() -> bool:
        with psycopg_transaction(tally.engine) as connection:
            row = connection.execute(
                "SELECT rollup_state FROM meter_versions WHERE id = %s", (version.version_id,)
            ).fetchone()
            return row is not None and row[0] == "ready"

    stop = threading.Event()
    threads = [threading.Thread(target=loop, args=(tally, stop)) for loop in (rollup_loop, backfill_loop)]
    for thread in threads:
        thread.start()
    try:
        _wait(lambda: not queued() and ready())
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
