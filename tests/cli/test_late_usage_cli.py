"""`tally tenants settings` and `tally late-usage list`."""

from __future__ import annotations

import uuid

from typer.testing import CliRunner

from tally.adapters.ids import INVOICE, format_id
from tally.app.finalize_invoice import finalize_invoice
from tally.app.run_billing import bill_customer
from tally.app.tenants import create_tenant
from tally.bootstrap import Tally
from tally.cli import app
from tests.app.test_late_usage import _ingest, _january_billed
from tests.invoicing_support import at


def test_settings_and_late_usage_from_the_command_line(database_url: str, tally: Tally) -> None:
    tenant = f"cli-late-{uuid.uuid4().hex[:8]}"
    tenant_id = create_tenant(tally.engine, tenant)
    runner = CliRunner()

    def run(*arguments: str) -> tuple[int, str]:
        result = runner.invoke(
            app, list(arguments), env={"TALLY_DATABASE_URL": database_url, "TALLY_TENANT": tenant, "COLUMNS": "250"}
        )
        return result.exit_code, result.output

    assert run("tenants", "settings", tenant) == (0, "late_usage_policy: next_invoice (default)\n")
    code, output = run("tenants", "settings", tenant, "--late-usage-policy", "monthly")
    assert code != 0 and "late_usage_policy_unknown" in output, output
    code, output = run("tenants", "settings", tenant, "--late-usage-policy", "separate")
    assert code == 0 and "late_usage_policy: separate (" in output, output

    customer_id, external, _, _ = _january_billed(tally, tenant_id, "separate")
    _ingest(tally, tenant_id, external, [at(1, 20)], at(2, 10))
    code, output = run("late-usage", "list", "--status", "open", "--customer", external)
    assert code == 0 and "late_event" in output and "open" in output, output
    code, output = run("invoice", "run", "--customer", external)
    assert code == 0 and "late usage draft" in output, output
    extra = bill_customer(tally.engine, tally.clock, tenant_id, customer_id).late_invoice_id
    assert extra is not None
    assert format_id(INVOICE, extra) in output  # the run named the extra draft it made
    finalize_invoice(tally.engine, tally.clock, tenant_id, extra)  # resolves the flag
    code, output = run("late-usage", "list", "--status", "resolved")
    assert code == 0 and "invoice:in_" in output, output
    code, output = run("late-usage", "list", "--status", "open")
    assert code == 0 and "late_event" not in output, output
    assert run("late-usage", "list", "--status", "closed")[0] != 0
