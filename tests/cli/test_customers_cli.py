"""`tally customers` and `tally test-clocks` end to end."""

from __future__ import annotations

import json
import re
import uuid

from typer.testing import CliRunner

from tally.app.tenants import create_tenant
from tally.bootstrap import Tally
from tally.cli import app


def test_customers_and_test_clocks(database_url: str, tally: Tally) -> None:
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    create_tenant(tally.engine, tenant)
    runner = CliRunner()

    def run(*arguments: str) -> tuple[int, str]:
        result = runner.invoke(
            app, list(arguments), env={"TALLY_DATABASE_URL": database_url, "TALLY_TENANT": tenant, "COLUMNS": "250"}
        )
        return result.exit_code, result.output

    code, output = run("test-clocks", "create", "2030-01-31T00:00:00Z", "--name", "sim")
    assert code == 0 and "created" in output, output
    match = re.search(r"clk_[0-9a-z]{26}", output)
    assert match
    clock_id = match.group(0)
    code, output = run("customers", "create", "acme", "--currency", "USD", "--country", "US", "--metadata", "a=b")
    assert code == 0 and "cus_" in output, output
    code, output = run("customers", "create", "sim-1", "--test-clock", clock_id, "--timezone", "Europe/Paris")
    assert code == 0, output
    code, output = run("customers", "create", "acme")
    assert code == 1 and "customer_external_id_taken" in output
    code, output = run("customers", "create", "bad", "--timezone", "Nowhere/Land")
    assert code == 1 and "customer_timezone_unknown" in output

    # The table's width follows the console's, which other tests may have fixed first: only the
    # short external ids are sure to show whole. `show` below checks the clock.
    code, output = run("customers", "list")
    assert code == 0 and "acme" in output and "sim-1" in output, output
    code, output = run("customers", "show", "sim-1")
    assert code == 0, output
    shown = json.loads(output)
    assert (shown["test_clock"], shown["timezone"], shown["created_at"]) == (
        clock_id,
        "Europe/Paris",
        "2030-01-31T00:00:00Z",
    )
    assert json.loads(run("customers", "show", shown["id"])[1])["external_id"] == "sim-1"
    code, output = run("customers", "show", "nobody")
    assert code == 1 and "customer_not_found" in output

    code, output = run("test-clocks", "advance", clock_id, "2030-02-28T00:00:00Z")
    assert code == 0 and "advanced to 2030-02-28T00:00:00+00:00 (ready)" in output, output
    code, output = run("test-clocks", "advance", clock_id, "2030-02-01T00:00:00Z")
    assert code == 1 and "test_clock_cannot_go_backwards" in output
    code, output = run("test-clocks", "advance", clock_id, "2030-03-01T00:00:00")
    assert code == 1 and "datetime_must_have_timezone" in output
    code, output = run("test-clocks", "list")
    assert code == 0 and clock_id in output and "2030-02-28" in output, output
