"""`tally invoice` end to end: run, list, show, explain, finalize (twice: refused)."""

from __future__ import annotations

import re
import uuid

from typer.testing import CliRunner

from tally.app.tenants import create_tenant
from tally.bootstrap import Tally
from tally.cli import app
from tests.invoicing_support import setup_catalog


def test_invoices_from_the_command_line(database_url: str, tally: Tally) -> None:
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

    code, output = run("invoice", "run", "--customer", "acme")
    invoice = re.search(r"in_[0-9a-z]{26}", output)
    assert code == 0 and invoice and "yes" in output, output
    code, output = run("invoice", "run")
    assert code == 0 and "yes" not in output, output
    code, output = run("invoice", "list", "--status", "draft")
    assert code == 0 and invoice.group(0) in output, output
    code, output = run("invoice", "show", invoice.group(0))
    line = re.search(r"il_[0-9a-z]{26}", output)
    assert code == 0 and line and "fixed_fee" in output and "3000" in output, output
    code, output = run("invoice", "explain", invoice.group(0), line.group(0))
    assert code == 0 and "basic_fee" in output, output
    code, output = run("invoice", "finalize", invoice.group(0))
    assert code == 0 and "INV-000001" in output, output
    code, output = run("invoice", "finalize", invoice.group(0))
    assert code == 1 and "invoice_must_be_draft" in output, output
