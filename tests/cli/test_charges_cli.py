"""`tally charge create|list|cancel` end to end: a pending charge, one invoiced at once, the list with
their statuses, a cancel, and refusals exiting 1 with their code."""

from __future__ import annotations

import re
import uuid

from typer.testing import CliRunner

from tally.app.tenants import create_tenant
from tally.bootstrap import Tally
from tally.cli import app
from tests.subscription_support import apply_test_catalog

CATALOG = """
products:
  - {code: services, name: Services}
prices:
  - {code: setup, product: services, model: flat_fee, currency: USD, amount: 250, interval: null}
  - {code: monthly, product: services, model: flat_fee, currency: USD, amount: 30}
"""


def test_charges_from_the_command_line(database_url: str, tally: Tally) -> None:
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    apply_test_catalog(tally, create_tenant(tally.engine, tenant), CATALOG)
    runner = CliRunner()

    def run(*arguments: str) -> tuple[int, str]:
        result = runner.invoke(
            app, list(arguments), env={"TALLY_DATABASE_URL": database_url, "TALLY_TENANT": tenant, "COLUMNS": "250"}
        )
        return result.exit_code, result.output

    assert run("customers", "create", "acme", "--currency", "USD")[0] == 0
    code, output = run("charge", "create", "acme", "setup", "--quantity", "2", "--description", "Onboarding")
    pending = re.search(r"chg_[0-9a-z]{26}", output)
    assert code == 0 and pending and "pending" in output, output
    code, output = run("charge", "create", "acme", "setup", "--invoice-now")
    assert code == 0 and "invoiced" in output and re.search(r"in_[0-9a-z]{26}", output), output
    code, output = run("charge", "list", "acme")
    assert code == 0 and pending.group(0) in output and "Onboarding" in output and "invoiced" in output, output
    code, output = run("charge", "cancel", pending.group(0))
    assert code == 0 and "cancelled" in output, output
    code, output = run("charge", "cancel", pending.group(0))
    assert code == 1 and "charge_is_cancelled" in output, output
    code, output = run("charge", "list", "acme", "--status", "pending")
    assert code == 0 and pending.group(0) not in output, output
    code, output = run("charge", "create", "acme", "monthly")
    assert code == 1 and "price_must_be_one_off" in output, output
    code, output = run("charge", "create", "acme", "setup", "--quantity", "0")
    assert code == 1 and "charge_quantity_must_be_positive" in output, output
    code, output = run("charge", "create", "acme", "setup", "--quantity", "many")
    assert code == 1 and "value_must_be_number" in output, output
