"""`tally subscriptions` end to end, on a test clock."""

from __future__ import annotations

import json
import re
import uuid

from typer.testing import CliRunner

from tally.app.tenants import create_tenant
from tally.bootstrap import Tally
from tally.cli import app
from tests.subscription_support import apply_test_catalog


def test_subscriptions_from_the_command_line(database_url: str, tally: Tally) -> None:
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    apply_test_catalog(tally, create_tenant(tally.engine, tenant))
    runner = CliRunner()

    def run(*arguments: str) -> tuple[int, str]:
        result = runner.invoke(
            app, list(arguments), env={"TALLY_DATABASE_URL": database_url, "TALLY_TENANT": tenant, "COLUMNS": "250"}
        )
        return result.exit_code, result.output

    code, output = run("test-clocks", "create", "2026-01-01T00:00:00Z")
    clock = re.search(r"clk_[0-9a-z]{26}", output)
    assert code == 0 and clock, output
    code, output = run("customers", "create", "acme", "--currency", "USD", "--test-clock", clock.group(0))
    assert code == 0, output

    code, output = run("subscriptions", "create", "acme", "--plan", "pro", "--trial-days", "0")
    found = re.search(r"sub_[0-9a-z]{26}", output)
    assert code == 0 and found and "active" in output, output
    sid = found.group(0)
    code, output = run("subscriptions", "create", "acme", "--price", "basic_eur")
    assert code == 1 and "price_currency_must_match_customer" in output, output

    code, output = run("subscriptions", "quantity", sid, "seat", "4")
    assert code == 0 and json.loads(output)["items"][1]["quantity"] == 4, output
    code, output = run("test-clocks", "advance", clock.group(0), "2026-01-16T12:00:00Z")
    assert code == 0, output
    code, output = run("subscriptions", "change", sid, "--plan", "basic@1", "--effective", "period_end")
    assert code == 0, output
    code, output = run("subscriptions", "cancel", sid, "--effective", "2026-03-01T00:00:00Z")
    assert code == 0 and "canceled, ends 2026-03-01T00:00:00+00:00" in output, output
    code, output = run("subscriptions", "cancel", sid, "--undo")
    assert code == 0 and "active" in output, output

    code, output = run("subscriptions", "show", sid, "--as-of", "2026-02-02T00:00:00Z")
    assert code == 0, output
    shown = json.loads(output)
    assert [item["price_code"] for item in shown["items"]] == ["basic_monthly", "tokens"]
    code, output = run("subscriptions", "timeline", sid)
    assert code == 0, output
    kinds = [entry["kind"] for entry in json.loads(output)["entries"]]
    assert kinds == ["started", "quantity_changed", "items_changed", "cancel_scheduled", "cancel_unscheduled"]
    code, output = run("subscriptions", "billing-events", sid, "--through", "2026-02-01T00:00:00Z", "--json")
    assert code == 0, output
    events = json.loads(output)
    assert [(event["kind"], event["amount_minor"]) for event in events["events"] if event["amount"]] == [
        ("fixed_fee", 9000),
        ("fixed_fee", 4000),
        ("fixed_fee", 3000),
    ]
    code, output = run("subscriptions", "billing-events", sid)
    assert code == 0 and "next due" in output, output
    code, output = run("subscriptions", "list", "--customer", "acme")
    assert code == 0 and "active" in output, output
    code, output = run("subscriptions", "pause", sid)
    assert code == 0 and "paused" in output, output
    code, output = run("subscriptions", "resume", sid)
    assert code == 0 and "resumed" in output, output


def test_scheduled_changes_from_the_command_line(database_url: str, tally: Tally) -> None:
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    apply_test_catalog(tally, create_tenant(tally.engine, tenant))
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
    code, output = run("subscriptions", "create", "acme", "--plan", "pro", "--trial-days", "0")
    found = re.search(r"sub_[0-9a-z]{26}", output)
    assert code == 0 and found, output
    sid = found.group(0)
    assert run("subscriptions", "change", sid, "--plan", "basic", "--effective", "period_end")[0] == 0
    code, output = run("subscriptions", "scheduled", sid)
    assert code == 0 and [(c["sequence"], c["kind"]) for c in json.loads(output)["changes"]] == [
        (1, "items_changed")
    ], output
    code, output = run("subscriptions", "withdraw", sid, "1")
    assert code == 0 and "scheduled change 1 withdrawn" in output, output
    code, output = run("subscriptions", "withdraw", sid, "1")
    assert code == 1 and "change_already_withdrawn" in output, output
    code, output = run("subscriptions", "scheduled", sid)
    assert code == 0 and json.loads(output)["changes"] == [], output
    code, output = run("subscriptions", "timeline", sid)
    assert code == 0 and [e["withdrawn_by"] for e in json.loads(output)["entries"]] == [None, 2, None], output
    # A cancel before a scheduled change withdraws it, and says so.
    code, output = run("subscriptions", "quantity", sid, "seat", "6", "--effective", "2026-02-10T00:00:00Z")
    assert code == 0, output
    code, output = run("subscriptions", "cancel", sid, "--effective", "period_end")
    assert code == 0 and "withdrew scheduled change 3 (quantity_changed at 2026-02-10" in output, output


def test_billing_threshold_from_the_command_line(database_url: str, tally: Tally) -> None:
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    apply_test_catalog(tally, create_tenant(tally.engine, tenant))
    runner = CliRunner()

    def run(*arguments: str) -> tuple[int, str]:
        result = runner.invoke(
            app, list(arguments), env={"TALLY_DATABASE_URL": database_url, "TALLY_TENANT": tenant, "COLUMNS": "250"}
        )
        return result.exit_code, result.output

    code, output = run("customers", "create", "acme", "--currency", "USD")
    assert code == 0, output
    code, output = run("subscriptions", "create", "acme", "--plan", "pro", "--billing-threshold", "0")
    assert code == 1 and "billing_threshold_out_of_range" in output, output
    code, output = run("subscriptions", "create", "acme", "--plan", "pro", "--billing-threshold", "50000")
    found = re.search(r"sub_[0-9a-z]{26}", output)
    assert code == 0 and found, output
    sid = found.group(0)
    code, output = run("subscriptions", "show", sid)
    assert code == 0 and json.loads(output)["billing_threshold"]["amount_minor"] == 50_000, output
    code, output = run("subscriptions", "billing-threshold", sid, "50000")
    assert code == 0 and "(unchanged)" in output, output
    code, output = run("subscriptions", "billing-threshold", sid, "70000", "--currency", "EUR")
    assert code == 1 and "billing_threshold_currency_must_match_subscription" in output, output
    code, output = run("subscriptions", "billing-threshold", sid, "lots")
    assert code == 1 and "billing_threshold_must_be_minor_units" in output, output
    code, output = run("subscriptions", "billing-threshold", sid, "\u00b2")  # a digit to isdigit(), not to int()
    assert code == 1 and "billing_threshold_must_be_minor_units" in output, output
    code, output = run("subscriptions", "billing-threshold", sid, "off")
    assert code == 0 and "billing threshold off" in output, output
    code, output = run("invoice", "evaluate-thresholds")
    assert code == 0 and "threshold evaluation" in output, output
