"""`tally demo` end to end: the summary table names every demo customer with its plan and four
invoices, a second run writes nothing, and `--with-key` prints an admin key of the demo tenant."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from tally.app.api_keys import authenticate
from tally.app.load_demo import DEMO_CUSTOMERS
from tally.app.tenants import find_tenants_by_name
from tally.bootstrap import Tally
from tally.cli import app


def test_tally_demo_prints_the_customers_and_loads_once(database_url: str, tally: Tally) -> None:
    runner = CliRunner()

    def run(*arguments: str) -> str:
        result = runner.invoke(app, list(arguments), env={"TALLY_DATABASE_URL": database_url, "COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return result.output

    first = run("demo", "--with-key")
    for story in DEMO_CUSTOMERS:
        row = next(line for line in first.splitlines() if f" {story.external_id} " in line)
        cells = [cell.strip() for cell in row.split("│")[1:-1]]
        assert cells[2] == "4", row  # four finalized invoices
        assert cells[1] == (story.upgrade_to or story.plan), row
    assert "steps written" in first
    secret = re.search(r"tally_sk_[A-Za-z0-9_-]+", first)
    assert secret is not None, first
    principal = authenticate(tally.engine, secret.group(0))
    demo_tenants = [tenant.id for tenant in find_tenants_by_name(tally.engine, "demo")]
    assert principal is not None and principal.tenant_id in demo_tenants

    second = run("demo")
    assert "already loaded, nothing written" in second
    assert [line for line in second.splitlines() if "│" in line] == [line for line in first.splitlines() if "│" in line]
