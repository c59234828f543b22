"""Prometheus metrics the jobs update, in the default registry of the process that runs them.

`tally worker --metrics-port` serves them; in `tally serve --with-worker` the API's own metrics
endpoint does, if it exposes the default registry.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Gauge

LEDGER_INTEGRITY_DISCREPANCIES = Gauge(
    "tally_ledger_integrity_discrepancies",
    "Discrepancies found by the last ledger integrity check run by this process (0: the ledger is sound).",
    # With PROMETHEUS_MULTIPROC_DIR set, report the value of whichever process ran the check last.
    multiprocess_mode="mostrecent",
)
LEDGER_INTEGRITY_LAST_RUN = Gauge(
    "tally_ledger_integrity_last_run_timestamp_seconds",
    "When the last ledger integrity check run by this process finished, as a Unix time.",
    multiprocess_mode="mostrecent",
)


def record_ledger_integrity_run(discrepancy_count: int, finished_at: datetime) -> None:
    if discrepancy_count < 0:
        raise ValueError("a discrepancy count is never negative")
    if finished_at.tzinfo is None:
        raise ValueError("finished_at must be timezone-aware")
    LEDGER_INTEGRITY_DISCREPANCIES.set(discrepancy_count)
    LEDGER_INTEGRITY_LAST_RUN.set(finished_at.timestamp())
