"""`tally bench ledger` end to end on a small workload: one JSON line, and a run it proved correct."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tally.cli import app


@pytest.mark.slow
def test_the_ledger_benchmark_prints_one_line_and_proves_its_run(database_url: str) -> None:
    result = CliRunner().invoke(
        app,
        [
            *("bench", "ledger", "--transfers", "120", "--workers", "3", "--accounts", "20"),
            *("--batch-size", "50", "--database-url", database_url),
        ],
    )
    assert result.exit_code == 0, result.output
    [line] = result.output.strip().splitlines()
    figures = json.loads(line)
    assert figures["bench"] == "ledger"
    assert (figures["transfers"], figures["workers"]) == (120, 3)
    assert (figures["conserved"], figures["duplicates"], figures["negative_balances"]) == (True, 0, 0)
    for name in ("transfers_per_s", "baseline_per_s", "ratio", "batch_transfers_per_s", "p99_ms"):
        assert figures[name] > 0, name
