"""`tally bench ingest` end to end on a small workload: one JSON line, nothing counted twice or lost."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tally.cli import app


@pytest.mark.slow
def test_the_ingest_benchmark_prints_one_line_and_proves_its_run(database_url: str) -> None:
    result = CliRunner().invoke(
        app,
        [
            *("bench", "ingest", "--events", "3000", "--duplicates", "0.2", "--batch-size", "500"),
            *("--workers", "1", "--connections", "2", "--bulk-jobs", "2", "--gzip"),
            *("--database-url", database_url),
        ],
    )
    assert result.exit_code == 0, result.output
    [line] = result.output.strip().splitlines()
    figures = json.loads(line)
    assert figures["bench"] == "ingest"
    assert (figures["events"], figures["distinct"], figures["duplicates_sent"]) == (3000, 2400, 600)
    assert figures["answered"] == {"accepted": 2400, "duplicate": 600}
    assert figures["duplicates_counted"] == 0 and figures["lost"] == 0
    for name in ("events_per_s", "baseline_per_s", "bulk_events_per_s", "p50_ms", "p99_ms"):
        assert figures[name] > 0, name
    # The baseline is measured before and after tally's runs; the ratios divide by their mean.
    runs = figures["baseline_runs_per_s"]
    assert len(runs) == 2 and all(rate > 0 for rate in runs)
    assert abs(figures["baseline_per_s"] - sum(runs) / 2) <= 0.1
    assert abs(figures["ratio"] - figures["events_per_s"] / figures["baseline_per_s"]) <= 0.001
