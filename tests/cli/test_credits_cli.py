"""`tally coupon|credit|commitment|tax-rate` end to end: each creates what it says, the grant's
balance is listed, an early expiry leaves nothing, and refusals exit 1 with their code."""

from __future__ import annotations

import re
import uuid

from typer.testing import CliRunner

from tally.app.tenants import create_tenant
from tally.bootstrap import Tally
from tally.cli import app


def test_terms_from_the_command_line(database_url: str, tally: Tally) -> None:
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    create_tenant(tally.engine, tenant)
    runner = CliRunner()

    def run(*arguments: str) -> tuple[int, str]:
        result = runner.invoke(
            app, list(arguments), env={"TALLY_DATABASE_URL": database_url, "TALLY_TENANT": tenant, "COLUMNS": "250"}
        )
        return result.exit_code, result.output

    assert run("customers", "create", "acme", "--currency", "USD")[0] == 0
    code, output = run("coupon", "create", "spring", "--percent-off", "20", "--duration", "repeating", "--periods", "2")
    assert code == 0 and re.search(r"coupon_[0-9a-z]{26}", output), output
    code, output = run("coupon", "redeem", "spring", "acme")
    assert code == 0 and re.search(r"cpr_[0-9a-z]{26}", output), output
    code, output = run("coupon", "create", "euros", "--amount-off-minor", "500", "--currency", "EUR")
    assert code == 0, output
    code, output = run("coupon", "redeem", "euros", "acme")
    assert code == 1 and "coupon_currency_must_match_invoice" in output, output

    code, output = run("credit", "grant", "acme", "2500", "--kind", "promotional", "--priority", "1")
    grant = re.search(r"cg_[0-9a-z]{26}", output)
    assert code == 0 and grant, output
    code, output = run("credit", "list", "acme")
    assert code == 0 and grant.group(0) in output and "2500" in output, output
    code, output = run("credit", "grant", "acme", "100", "--expires-at", "2000-01-01T00:00:00+00:00")
    assert code == 1 and "grant_must_expire_after_it_takes_effect" in output, output
    code, output = run("credit", "expire", grant.group(0))
    assert code == 0 and "0 left" in output, output
    code, output = run("credit", "expire", grant.group(0))
    assert code == 1 and "credit_grant_is_expired" in output, output

    code, output = run(
        "commitment",
        "create",
        "acme",
        "10000",
        "--from",
        "2030-01-01T00:00:00+00:00",
        "--to",
        "2030-04-01T00:00:00+00:00",
    )
    assert code == 0 and re.search(r"cmt_[0-9a-z]{26}", output), output
    code, output = run("tax-rate", "create", "VAT", "20", "--customer", "acme")
    rate = re.search(r"txr_[0-9a-z]{26}", output)
    assert code == 0 and rate, output
    assert run("tax-rate", "retire", rate.group(0))[0] == 0
    code, output = run("tax-rate", "retire", rate.group(0))
    assert code == 1 and "tax_rate_is_retired" in output, output
