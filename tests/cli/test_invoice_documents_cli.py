"""`tally invoice pdf|html|export|profile` end to end."""

from __future__ import annotations

import csv
import io
import re
import uuid
from pathlib import Path

from typer.testing import CliRunner

from tally.app.tenants import create_tenant
from tally.bootstrap import Tally
from tally.cli import app
from tests.invoicing_support import setup_catalog


def test_documents_exports_and_profile_from_the_command_line(database_url: str, tally: Tally, tmp_path: Path) -> None:
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
    assert code == 0 and invoice, output
    assert run("invoice", "finalize", invoice.group(0))[0] == 0

    code, output = run("invoice", "profile")
    assert code == 0 and f"seller: {tenant} (the tenant's name; not set)" in output, output
    code, output = run(
        "invoice", "profile", "--seller-name", "Acme AI GmbH", "--tax-id", "eu_vat=DE123456789", "--note", "IBAN DE89"
    )
    assert code == 0 and "tax id: eu_vat DE123456789" in output, output
    code, output = run("invoice", "profile", "--seller-name", "Acme", "--locale", "nowhere")
    assert code == 1 and "locale_unknown" in output, output

    target = tmp_path / "january.pdf"
    code, output = run("invoice", "pdf", invoice.group(0), "-o", str(target))
    assert code == 0, output
    assert target.read_bytes().startswith(b"%PDF-")
    page = tmp_path / "january.html"
    code, output = run("invoice", "html", invoice.group(0), "-o", str(page), "--locale", "de_DE")
    assert code == 0, output
    text = page.read_text(encoding="utf-8")
    assert "Acme AI GmbH" in text and "INV-000001" in text and "30,00" in text

    code, output = run("invoice", "export", "--records", "lines")
    assert code == 0, output
    rows = list(csv.DictReader(io.StringIO(output)))
    assert [(row["invoice_number"], row["kind"], row["amount"]) for row in rows] == [
        ("INV-000001", "fixed_fee", "30.00")
    ]
    code, output = run("invoice", "export", "--format", "xml")
    assert code == 1 and "export_format_unknown" in output, output
