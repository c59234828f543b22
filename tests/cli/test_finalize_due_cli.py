"""`tally invoice finalize-due`: nothing before the grace period has passed on the customer's test
clock, the draft finalized after, nothing the second time; a grace period out of bounds refused."""

from __future__ import annotations

import re
import uuid

from typer.testing import CliRunner

from tally.app.tenants import create_tenant
from tally.bootstrap import Tally
from tally.cli import app
from tests.invoicing_support import setup_catalog


def test_finalize_due_from_the_command_line(database_url: str, tally: Tally) -> None:
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    setup_catalog(tally, create_tenant(tally.engine, tenant))
    runner = CliRunner()

    def run(*arguments: str) -> tuple[int, str]:
        result = runner.invoke(
            app, list(arguments), env={"TALLY_DATABASE_URL": database_url, "TALLY_TENANT": tenant, "COLUMNS": "250"}
        )
        return result.exit_code, result.output

    code, output = run("test-clocks", "create", "2026-01-01T00:00:00Z")
    clock = re.search(r"clk_[0-9a-z]{26}", output)
    assert code == 0 and clock, output
    assert run("customers", "create", "acme", "--currency", "USD", "--test-clock", clock.group(0))[0] == 0
    assert run("subscriptions", "create", "acme", "--plan", "basic")[0] == 0
    code, output = run("invoice", "run")
    invoice = re.search(r"in_[0-9a-z]{26}", output)
    assert code == 0 and invoice, output

    code, output = run("invoice", "finalize-due")
    assert code == 0 and "INV-" not in output and invoice.group(0) not in output, output
    assert run("test-clocks", "advance", clock.group(0), "2026-01-01T23:00:00Z")[0] == 0
    code, output = run("invoice", "finalize-due")
    assert code == 0 and "INV-" not in output, output
    # An hour's grace is over on the clock already: the option wins over the setting.
    code, output = run("invoice", "finalize-due", "--grace-hours", "1")
    assert code == 0 and invoice.group(0) in output and "INV-000001" in output and "finalized" in output, output
    code, output = run("invoice", "finalize-due")
    assert code == 0 and "INV-" not in output, output
    code, output = run("invoice", "list", "--status", "open")
    assert code == 0 and "INV-000001" in output, output

    code, output = run("invoice", "finalize-due", "--grace-hours", "721")
    assert code == 1 and "grace_period_out_of_range" in output, output
