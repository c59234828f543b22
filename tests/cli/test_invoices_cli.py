"""`tally invoice` end to end: run, list, show, explain, finalize (twice: refused); a usage line's
explanation and events."""

from __future__ import annotations

import json
import re
import uuid

from typer.testing import CliRunner

from tally.adapters.ids import INVOICE, INVOICE_LINE, format_id
from tally.adapters.postgres import invoices as invoice_store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.advance_test_clock import advance_test_clock
from tally.app.invoice_queries import get_invoice
from tally.app.tenants import create_tenant
from tally.bootstrap import Tally
from tally.cli import app
from tally.core.invoicing import LineKind
from tests.invoicing_support import at, calls, customer_on_clock, setup_catalog, subscribe


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


def test_a_usage_line_explained_down_to_its_events(database_url: str, tally: Tally) -> None:
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    tenant_id = create_tenant(tally.engine, tenant)
    setup_catalog(tally, tenant_id)
    customer_id, clock_id, external = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, customer_id)
    sent = calls(tally, tenant_id, external, [at(1, 2), at(1, 3), at(1, 4)])
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 1))
    with psycopg_transaction(tally.engine) as connection:
        draft = invoice_store.draft_of(connection, tenant_id, customer_id, "USD")
    assert draft is not None
    lines = get_invoice(tally.engine, tenant_id, draft.id).lines
    invoice = format_id(INVOICE, draft.id)
    usage = format_id(INVOICE_LINE, next(line.id for line in lines if line.key.kind is LineKind.USAGE))
    fee = format_id(INVOICE_LINE, next(line.id for line in lines if line.key.kind is LineKind.FIXED_FEE))
    runner = CliRunner()

    def run(*arguments: str) -> tuple[int, str]:
        result = runner.invoke(
            app, list(arguments), env={"TALLY_DATABASE_URL": database_url, "TALLY_TENANT": tenant, "COLUMNS": "250"}
        )
        return result.exit_code, result.output

    code, output = run("invoice", "explain", invoice, usage)
    assert code == 0 and "meter api_calls version 1" in output and "inferred" not in output, output
    assert f"3 events: tally invoice events {invoice} {usage}" in output, output
    code, output = run("invoice", "events", invoice, usage, "--limit", "2")
    assert code == 0 and sent[0] in output and sent[1] in output and sent[2] not in output, output
    cursor = re.search(r"--starting-after (\S+)", output)
    assert cursor, output
    code, output = run("invoice", "events", invoice, usage, "--starting-after", cursor.group(1), "--json")
    assert code == 0, output
    document = json.loads(output)
    assert [(event["id"], event["value"]) for event in document["data"]] == [(sent[2], "1")]
    assert (document["has_more"], document["meter"], document["meter_version"]) == (False, "api_calls", 1)
    code, output = run("invoice", "events", invoice, fee)
    assert code == 1 and "invoice_line_has_no_usage" in output, output
