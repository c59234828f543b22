"""The worker's metering loops: the rollup worker and the meter backfill, on threads of their own.

They poll faster than DBOS schedules can (a rollup pass every ~200 ms keeps the raw tail that usage
queries read short) and need no checkpoints: each pass is one transaction that either committed or
did not, so a crash loses nothing and a repeat does nothing twice. Several workers may run them at
once (`FOR UPDATE SKIP LOCKED` and advisory locks share the work; see tally.app.roll_up_events).
"""

from __future__ import annotations

import logging
import threading

from tally.bootstrap import Tally
from tally.worker.registry import define_loop

logger = logging.getLogger(__name__)

# After an unexpected error, wait this long before the next pass (the error is logged each time).
ERROR_PAUSE_SECONDS = 2.0


def rollup_loop(tally: Tally, stop: threading.Event) -> None:
    """Roll up queued batches until `stop`: back-to-back while there is work, else every poll interval."""
    from tally.app.roll_up_events import roll_up_events

    settings = tally.settings
    if not settings.rollup_worker_enabled:
        logger.info("rollup worker disabled (TALLY_ROLLUP_WORKER_ENABLED=false): usage reads the raw tail")
        return
    interval = settings.rollup_poll_interval_ms / 1000
    while not stop.is_set():
        try:
            outcome = roll_up_events(
                tally.engine,
                batches_max=settings.rollup_batches_per_transaction_max,
                events_max=settings.rollup_events_per_transaction_max,
            )
        except Exception:
            logger.exception("rollup pass failed; retrying in %.0f s", ERROR_PAUSE_SECONDS)
            stop.wait(ERROR_PAUSE_SECONDS)
            continue
        if outcome.batches == 0:
            stop.wait(interval)


def backfill_loop(tally: Tally, stop: threading.Event) -> None:
    """Build the rollups of new meter versions from raw events, one version per transaction."""
    from tally.app.backfill_meter_rollups import backfill_next_version

    while not stop.is_set():
        try:
            outcome = backfill_next_version(tally.engine, tally.clock)
        except Exception:
            logger.exception("meter backfill failed; retrying in %.0f s", ERROR_PAUSE_SECONDS)
            stop.wait(ERROR_PAUSE_SECONDS)
            continue
        if outcome is None:
            stop.wait(tally.settings.meter_backfill_poll_seconds)
        else:
            logger.info(
                "meter %s version %d backfilled: %d rollup rows in %d ms",
                outcome.meter_code,
                outcome.version,
                outcome.rollup_rows,
                outcome.duration_ms,
            )


define_loop("usage_rollups", rollup_loop)
define_loop("meter_backfills", backfill_loop)
