"""`tally invoice …`: run billing, list and show invoices, finalize a draft, explain a line."""

from __future__ import annotations

import json
import uuid
from typing import Any

import typer
from rich.table import Table

from tally.adapters.ids import CUSTOMER, INVOICE, INVOICE_LINE, format_id, parse_id
from tally.cli._context import audit, console, fail, open_tally, rejections_as_errors, resolve_tenant

app = typer.Typer(help="Invoices: billing runs, drafts, finalizing, explanations.", no_args_is_help=True)

TenantOption = typer.Option(None, "--tenant", envvar="TALLY_TENANT", help="Tenant id or name.")


def _invoice_id(text: str) -> uuid.UUID:
    parsed = parse_id(INVOICE, text)
    if parsed is None:
        fail("invoice_not_found", f"{text!r} is not an invoice id (in_…)")
    return parsed


def _customer_id(tally: Any, tenant_id: uuid.UUID, text: str) -> uuid.UUID:
    from tally.app import customer_queries

    parsed = parse_id(CUSTOMER, text)
    if parsed is not None:
        return parsed
    return customer_queries.get_customer_by_external_id(tally.engine, tenant_id, text).id


def _money(amount_minor: int, currency: str) -> str:
    return f"{amount_minor} {currency} (minor units)"


@app.command("run")
def run(
    customer: str | None = typer.Option(None, "--customer", help="Only this customer (cus_… or external id)."),
    tenant: str | None = TenantOption,
) -> None:
    """Bring drafts up to what is due by each customer's clock. Running it again changes nothing."""
    from tally.app.run_billing import CustomerRun, bill_customer, run_billing

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        runs: tuple[CustomerRun, ...]
        if customer is not None:
            runs = (bill_customer(tally.engine, tally.clock, tenant_id, _customer_id(tally, tenant_id, customer)),)
        else:
            runs = run_billing(tally.engine, tally.clock, tenant_id=tenant_id).customers
        table = Table(title="billing run")
        for column in ("customer", "draft", "changed", "lines", "refused"):
            table.add_column(column)
        for item in runs:
            table.add_row(
                format_id(CUSTOMER, item.customer_id),
                "" if item.invoice_id is None else format_id(INVOICE, item.invoice_id),
                "yes" if item.changed else "no",
                str(item.lines),
                "" if item.rejection is None else item.rejection.code,
            )
        console.print(table)
        if any(item.rejection is not None for item in runs):
            raise typer.Exit(1)


@app.command("list")
def list_invoices(
    customer: str | None = typer.Option(None, "--customer", help="Only this customer's (cus_… or external id)."),
    status: str | None = typer.Option(None, "--status", help="draft, open, paid, void or uncollectible."),
    tenant: str | None = TenantOption,
) -> None:
    """Invoices, newest first."""
    from tally.adapters.pagination import LIMIT_MAX, PageRequest
    from tally.app.invoice_queries import list_invoices as find

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        customer_id = None if customer is None else _customer_id(tally, tenant_id, customer)
        page = find(tally.engine, tenant_id, PageRequest(limit=LIMIT_MAX), customer_id=customer_id, status=status)
        table = Table(title="invoices")
        for column in ("id", "number", "customer", "status", "total", "due", "remaining"):
            table.add_column(column)
        for invoice in page.items:
            table.add_row(
                format_id(INVOICE, invoice.id),
                invoice.number or "",
                format_id(CUSTOMER, invoice.customer_id),
                invoice.status,
                _money(invoice.total_minor, invoice.currency),
                _money(invoice.amount_due_minor, invoice.currency),
                _money(invoice.amount_remaining_minor, invoice.currency),
            )
        console.print(table)


@app.command("show")
def show(invoice: str = typer.Argument(..., help="An invoice id (in_…)."), tenant: str | None = TenantOption) -> None:
    """One invoice with its lines."""
    from tally.app.invoice_queries import get_invoice

    invoice_id = _invoice_id(invoice)
    with open_tally() as tally, rejections_as_errors():
        view = get_invoice(tally.engine, resolve_tenant(tally, tenant), invoice_id)
        row = view.invoice
        console.print(
            f"{invoice} {row.number or '(draft)'} · {row.status} · customer {view.customer_external_id} · "
            f"total {_money(row.total_minor, row.currency)} · "
            f"remaining {_money(row.amount_remaining_minor, row.currency)}"
        )
        table = Table(title="lines")
        for column in ("id", "kind", "service period", "description", "amount"):
            table.add_column(column)
        for line in view.lines:
            table.add_row(
                format_id(INVOICE_LINE, line.id),
                line.key.kind.value + (f" #{line.sequence}" if line.sequence else ""),
                f"{line.key.service_start.isoformat()} → {line.key.service_end.isoformat()}",
                line.description,
                str(line.amount_minor),
            )
        console.print(table)


@app.command("finalize")
def finalize(
    invoice: str = typer.Argument(..., help="A draft invoice id (in_…)."),
    due_in_days: int = typer.Option(30, "--due-in-days", help="Due this many days after issue."),
    tenant: str | None = TenantOption,
) -> None:
    """Number the draft, fix its dates and post it to the ledger."""
    from tally.app.finalize_invoice import finalize_invoice

    invoice_id = _invoice_id(invoice)
    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        row = finalize_invoice(tally.engine, tally.clock, tenant_id, invoice_id, due_in_days=due_in_days)
        audit(tally, tenant_id, "invoice.finalize", "invoice", invoice)
        console.print(f"{invoice} finalized as {row.number} ({row.status})")


@app.command("explain")
def explain(
    invoice: str = typer.Argument(..., help="An invoice id (in_…)."),
    line: str = typer.Argument(..., help="A line id (il_…)."),
    tenant: str | None = TenantOption,
) -> None:
    """How one line was derived, down to the usage windows measured again from the events."""
    from tally.app.invoice_queries import explain_line

    invoice_id = _invoice_id(invoice)
    line_id = parse_id(INVOICE_LINE, line)
    if line_id is None:
        fail("invoice_line_not_found", f"{line!r} is not a line id (il_…)")
    with open_tally() as tally, rejections_as_errors():
        found = explain_line(tally.engine, resolve_tenant(tally, tenant), invoice_id, line_id)
        console.print(f"{found.line.description}: {found.line.amount_minor} ({found.line.key.kind.value})")
        console.print_json(json.dumps(found.line.explanation))
        for window in found.windows:
            console.print(
                f"usage [{window.start.isoformat()}, {window.end.isoformat()}): {window.value} "
                f"from {window.event_count} events"
            )
