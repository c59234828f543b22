"""`tally invoice …`: run billing, list and show invoices, finalize a draft (or every draft past its
grace period), explain a line; documents (pdf, html), exports for finance and the seller profile on
documents."""

from __future__ import annotations

import json
import sys
import uuid
from datetime import datetime
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from tally.adapters.ids import CREDIT_NOTE, CUSTOMER, INVOICE, INVOICE_LINE, format_id, parse_id
from tally.cli._context import (
    audit,
    console,
    error_console,
    fail,
    open_tally,
    rejections_as_errors,
    resolve_customer,
    resolve_tenant,
)

app = typer.Typer(help="Invoices: billing runs, drafts, finalizing, explanations.", no_args_is_help=True)

TenantOption = typer.Option(None, "--tenant", envvar="TALLY_TENANT", help="Tenant id or name.")


def _invoice_id(text: str) -> uuid.UUID:
    parsed = parse_id(INVOICE, text)
    if parsed is None:
        fail("invoice_not_found", f"{text!r} is not an invoice id (in_…)")
    return parsed


def _money(amount_minor: int, currency: str) -> str:
    return f"{amount_minor} {currency} (minor units)"


@app.command("run")
def run(
    customer: str | None = typer.Option(None, "--customer", help="Only this customer (cus_… or external id)."),
    tenant: str | None = TenantOption,
) -> None:
    """Bring drafts up to what is due by each customer's clock. Running it again changes nothing."""
    from tally.app.run_billing import CustomerRun, bill_customer, default_jobs, run_billing

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        runs: tuple[CustomerRun, ...]
        if customer is not None:
            runs = (bill_customer(tally.engine, tally.clock, tenant_id, resolve_customer(tally, tenant_id, customer)),)
        else:
            runs = run_billing(tally.engine, tally.clock, tenant_id=tenant_id, jobs=default_jobs()).customers
        table = Table(title="billing run")
        late = any(item.late_invoice_id is not None or item.credit_notes for item in runs)
        columns = ["customer", "draft", "changed", "lines", "refused"]
        if late:  # the `separate` late usage policy made an extra draft or credit notes
            columns[2:2] = ["late usage draft", "credit notes"]
        for column in columns:
            table.add_column(column)
        for item in runs:
            cells = [
                format_id(CUSTOMER, item.customer_id),
                "" if item.invoice_id is None else format_id(INVOICE, item.invoice_id),
                "yes" if item.changed else "no",
                str(item.lines),
                "" if item.rejection is None else item.rejection.code,
            ]
            if late:
                cells[2:2] = [
                    "" if item.late_invoice_id is None else format_id(INVOICE, item.late_invoice_id),
                    " ".join(format_id(CREDIT_NOTE, note) for note in item.credit_notes),
                ]
            table.add_row(*cells)
        console.print(table)
        if any(item.rejection is not None for item in runs):
            raise typer.Exit(1)


@app.command("evaluate-thresholds")
def evaluate_thresholds(
    customer: str | None = typer.Option(None, "--customer", help="Only this customer (cus_… or external id)."),
    tenant: str | None = TenantOption,
) -> None:
    """Invoice at once every customer whose usage so far passed a subscription's billing threshold
    (what the worker's `tally.billing_threshold_evaluation` job does). Running it again changes nothing."""
    from tally.app.evaluate_billing_thresholds import evaluate_billing_thresholds

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        named = None if customer is None else (resolve_customer(tally, tenant_id, customer),)
        result = evaluate_billing_thresholds(tally.engine, tally.clock, tenant_id=tenant_id, customer_ids=named)
        table = Table(title="threshold evaluation")
        for column in ("customer", "outcome", "accrued / threshold", "invoice", "refused"):
            table.add_column(column)
        for item in result.customers:
            table.add_row(
                format_id(CUSTOMER, item.customer_id),
                item.outcome.value,
                ", ".join(f"{a.accrued_minor} / {a.threshold_minor}" for a in item.accruals),
                item.number or "",
                "" if item.rejection is None else item.rejection.code,
            )
        console.print(table)
        if result.refused:
            raise typer.Exit(1)


@app.command("finalize-due")
def finalize_due(
    grace_hours: int | None = typer.Option(
        None, "--grace-hours", min=0, help="Grace period in hours (default: the invoice_grace_period_hours setting)."
    ),
    tenant: str | None = TenantOption,
) -> None:
    """Refresh, then finalize, every draft whose grace period has passed by its customer's clock."""
    from tally.app.finalize_due_invoices import finalize_due_invoices, grace_period_of_hours

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        hours = tally.settings.invoice_grace_period_hours if grace_hours is None else grace_hours
        try:
            grace_period = grace_period_of_hours(hours)
        except ValueError as error:
            fail("grace_period_out_of_range", str(error))
        result = finalize_due_invoices(tally.engine, tally.clock, grace_period=grace_period, tenant_id=tenant_id)
        table = Table(title="drafts past their grace period")
        for column in ("customer", "invoice", "number", "outcome", "refused"):
            table.add_column(column)
        for item in result.finalized:
            if item.invoice_id is not None:
                audit(tally, tenant_id, "invoice.finalize", "invoice", format_id(INVOICE, item.invoice_id))
        for item in result.customers:
            table.add_row(
                format_id(CUSTOMER, item.customer_id),
                "" if item.invoice_id is None else format_id(INVOICE, item.invoice_id),
                item.number or "",
                item.outcome.value,
                "" if item.rejection is None else item.rejection.code,
            )
        console.print(table)
        if result.refused:
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
        customer_id = None if customer is None else resolve_customer(tally, tenant_id, customer)
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


def _line_ids(invoice: str, line: str) -> tuple[uuid.UUID, uuid.UUID]:
    """An invoice id (in_…) and one of its line ids (il_…), or the command fails."""
    invoice_id = _invoice_id(invoice)
    line_id = parse_id(INVOICE_LINE, line)
    if line_id is None:
        fail("invoice_line_not_found", f"{line!r} is not a line id (il_…)")
    return invoice_id, line_id


@app.command("explain")
def explain(
    invoice: str = typer.Argument(..., help="An invoice id (in_…)."),
    line: str = typer.Argument(..., help="A line id (il_…)."),
    tenant: str | None = TenantOption,
) -> None:
    """How one line was derived, down to the usage windows measured again from the events."""
    from tally.app.invoice_queries import explain_line

    invoice_id, line_id = _line_ids(invoice, line)
    with open_tally() as tally, rejections_as_errors():
        found = explain_line(tally.engine, resolve_tenant(tally, tenant), invoice_id, line_id)
        console.print(f"{found.line.description}: {found.line.amount_minor} ({found.line.key.kind.value})")
        console.print_json(json.dumps(found.line.explanation))
        if found.meter is not None:
            version = found.meter.version
            inferred = " (inferred: the line does not record it)" if found.meter.inferred else ""
            console.print(f"measured with meter {version.code} version {version.version}{inferred}")
        for window in found.windows:
            console.print(
                f"usage [{window.start.isoformat()}, {window.end.isoformat()}): {window.value} "
                f"from {window.event_count} events"
            )
        if found.meter is not None:
            console.print(f"{found.event_count} events: tally invoice events {invoice} {line}")


@app.command("events")
def events(
    invoice: str = typer.Argument(..., help="An invoice id (in_…)."),
    line: str = typer.Argument(..., help="A usage line id (il_…)."),
    limit: int = typer.Option(100, "--limit", help="Events per page (1 to 1000)."),
    starting_after: str | None = typer.Option(None, "--starting-after", help="A next cursor from the last page."),
    as_json: bool = typer.Option(False, "--json", help="JSON (the API's shape) instead of a table."),
    tenant: str | None = TenantOption,
) -> None:
    """The events a usage line was measured from, as they count now, each with what it contributes."""
    from tally.api.raw_json import RawJson, encode
    from tally.app.invoice_queries import LineEventsQuery, list_line_events

    invoice_id, line_id = _line_ids(invoice, line)
    with open_tally() as tally, rejections_as_errors():
        found = list_line_events(
            tally.engine,
            resolve_tenant(tally, tenant),
            invoice_id,
            line_id,
            LineEventsQuery(cursor=starting_after, limit=limit),
        )
    version = found.meter.version
    if as_json:
        # Exact: properties as stored, values as decimal strings (or the distinct value as sent).
        document = {
            "object": "list",
            "data": [
                {
                    "object": "invoice_line_event",
                    "id": event.event_id,
                    "timestamp": event.timestamp,
                    "properties": RawJson(event.properties_json),
                    "value": RawJson(event.distinct_value_json)
                    if event.distinct_value_json is not None
                    else (None if event.value is None else str(event.value)),
                }
                for event in found.events
            ],
            "has_more": found.has_more,
            "next_cursor": found.next_cursor,
            "meter": version.code,
            "meter_version": version.version,
            "meter_version_inferred": found.meter.inferred,
        }
        print(encode(document))
        return
    inferred = ", inferred" if found.meter.inferred else ""
    table = Table(title=f"events of {line} (meter {version.code} version {version.version}{inferred})")
    for column in ("id", "timestamp", "value", "properties"):
        table.add_column(column)
    for event in found.events:
        contributed = event.distinct_value_json if event.distinct_value_json is not None else str(event.value)
        # Text, not markup: ids and properties are the client's and may hold [brackets].
        table.add_row(Text(event.event_id), event.timestamp.isoformat(), Text(contributed), Text(event.properties_json))
    console.print(table)
    if found.next_cursor is not None:
        console.print(f"more: --starting-after {found.next_cursor}")


def _write_document(invoice: str, kind: str, output: Path | None, locale: str | None, tenant: str | None) -> None:
    from tally.app.invoice_documents import render_invoice

    invoice_id = _invoice_id(invoice)
    with open_tally() as tally, rejections_as_errors():
        rendered = render_invoice(tally.engine, resolve_tenant(tally, tenant), invoice_id, kind, locale=locale)
    target = output or Path(rendered.filename)
    if str(target) == "-":
        sys.stdout.buffer.write(rendered.content)
        sys.stdout.buffer.flush()
        return
    target.write_bytes(rendered.content)
    error_console.print(f"{invoice} written to {target} ({len(rendered.content)} bytes)")


OutputOption = typer.Option(
    None, "--output", "-o", help="Where to write it (default: the invoice's file name here; - for stdout)."
)
LocaleOption = typer.Option(
    None, "--locale", help="A CLDR locale (de_DE); default: the customer's, then the profile's."
)


@app.command("pdf")
def pdf(
    invoice: str = typer.Argument(..., help="An invoice id (in_…)."),
    output: Path | None = OutputOption,
    locale: str | None = LocaleOption,
    tenant: str | None = TenantOption,
) -> None:
    """The invoice as a PDF file (drafts are watermarked)."""
    _write_document(invoice, "pdf", output, locale, tenant)


@app.command("html")
def html(
    invoice: str = typer.Argument(..., help="An invoice id (in_…)."),
    output: Path | None = OutputOption,
    locale: str | None = LocaleOption,
    tenant: str | None = TenantOption,
) -> None:
    """The invoice as a self-contained HTML page."""
    _write_document(invoice, "html", output, locale, tenant)


@app.command("export")
def export(
    records: str = typer.Option("invoices", "--records", help="invoices, or lines."),
    export_format: str = typer.Option("csv", "--format", help="csv, json or jsonl."),
    status: str | None = typer.Option(None, "--status", help="Only invoices in this status."),
    issued_from: datetime | None = typer.Option(None, "--from", help="Issued at or after (with a UTC offset)."),
    issued_to: datetime | None = typer.Option(None, "--to", help="Issued before (with a UTC offset)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file (default: stdout)."),
    tenant: str | None = TenantOption,
) -> None:
    """Invoices or invoice lines for finance, streamed (same columns as GET /v1/invoices/export)."""
    from tally.app.export_invoices import ExportFormat, ExportQuery, ExportRecords, export_invoices

    if records not in {item.value for item in ExportRecords}:
        fail("export_records_unknown", "--records is invoices or lines")
    if export_format not in {item.value for item in ExportFormat}:
        fail("export_format_unknown", "--format is csv, json or jsonl")
    with open_tally() as tally, rejections_as_errors():
        query = ExportQuery(
            records=ExportRecords(records),
            format=ExportFormat(export_format),
            status=status,
            issued_from=issued_from,
            issued_to=issued_to,
        )
        chunks = export_invoices(tally.engine, resolve_tenant(tally, tenant), query)
        if output is None:
            for chunk in chunks:
                sys.stdout.write(chunk)
            sys.stdout.flush()
        else:
            with output.open("w", encoding="utf-8", newline="") as file:
                for chunk in chunks:
                    file.write(chunk)
            error_console.print(f"{records} written to {output}")


@app.command("profile")
def profile(
    seller_name: str | None = typer.Option(None, "--seller-name", help="Set the profile: the seller's name."),
    email: str | None = typer.Option(None, "--email"),
    address_line: list[str] | None = typer.Option(None, "--address-line", help="Repeat for each address line."),
    tax_id: list[str] | None = typer.Option(None, "--tax-id", help="type=value, e.g. eu_vat=DE123456789; repeat."),
    locale: str = typer.Option("en_US", "--locale", help="The documents' default locale."),
    note: list[str] | None = typer.Option(None, "--note", help="Printed under the totals; repeat."),
    footer: str | None = typer.Option(None, "--footer"),
    tenant: str | None = TenantOption,
) -> None:
    """Show the tenant's invoice profile, or replace it with --seller-name and the other options."""
    from tally.app.invoice_profile import InvoiceProfile, get_invoice_profile, set_invoice_profile
    from tally.core.customers import TaxId

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        if seller_name is None:
            shown = get_invoice_profile(tally.engine, tenant_id)
        else:
            tax_ids = []
            for item in tax_id or []:
                kind, _, value = item.partition("=")
                tax_ids.append(TaxId(kind, value))
            shown = set_invoice_profile(
                tally.engine,
                tally.clock,
                tenant_id,
                InvoiceProfile(
                    seller_name=seller_name,
                    email=email,
                    address_lines=tuple(address_line or ()),
                    tax_ids=tuple(tax_ids),
                    locale=locale,
                    notes=tuple(note or ()),
                    footer=footer,
                ),
            )
            audit(tally, tenant_id, "invoice_profile.update", "invoice_profile", str(tenant_id))
        console.print(f"seller: {shown.seller_name}" + ("" if shown.configured else " (the tenant's name; not set)"))
        details: list[tuple[str, str | None]] = [("email", shown.email), ("locale", shown.locale)]
        details += [("address", text) for text in shown.address_lines]
        details += [("tax id", f"{registration.type} {registration.value}") for registration in shown.tax_ids]
        details += [("note", text) for text in shown.notes]
        details.append(("footer", shown.footer))
        for label, detail in details:
            if detail:
                console.print(f"{label}: {detail}")
