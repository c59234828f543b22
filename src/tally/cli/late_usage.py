"""`tally late-usage list`: usage that arrived or changed after its period was invoiced, and how the
billing run resolved it (the same flags as `GET /v1/late_usage`)."""

from __future__ import annotations

import uuid

import typer
from rich.table import Table

from tally.adapters.ids import CREDIT_NOTE, INVOICE, LATE_USAGE, format_id
from tally.cli._context import console, fail, open_tally, rejections_as_errors, resolve_customer, resolve_tenant

app = typer.Typer(
    help="Late usage flags: open until an invoice bills them or a credit note credits them.", no_args_is_help=True
)

TenantOption = typer.Option(None, "--tenant", envvar="TALLY_TENANT", help="Tenant id or name.")


def _resolution(text: str | None) -> str:
    if text is None:
        return ""
    target, _, value = text.partition(":")
    prefixes = {"invoice": INVOICE, "credit_note": CREDIT_NOTE}
    return f"{target}:{format_id(prefixes[target], uuid.UUID(value))}" if target in prefixes else text


@app.command("list")
def list_flags(
    customer: str | None = typer.Option(None, "--customer", help="Only this customer's (cus_… or external id)."),
    status: str | None = typer.Option(None, "--status", help="open or resolved."),
    tenant: str | None = TenantOption,
) -> None:
    """Flags, newest first (at most 100; use the API's pages for more)."""
    from tally.adapters.pagination import LIMIT_MAX, PageRequest
    from tally.app.late_usage_queries import FlagStatus, list_late_usage

    if status is not None and status not in set(FlagStatus):
        fail("late_usage_status_unknown", "--status is open or resolved")
    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        customer_id = None if customer is None else resolve_customer(tally, tenant_id, customer)
        page = list_late_usage(
            tally.engine,
            tenant_id,
            PageRequest(limit=LIMIT_MAX),
            customer_id=customer_id,
            status=None if status is None else FlagStatus(status),
        )
        table = Table(title="late usage")
        for column in ("id", "customer", "event", "timestamp", "kind", "flagged", "resolution"):
            table.add_column(column)
        for flag in page.items:
            table.add_row(
                format_id(LATE_USAGE, flag.id),
                flag.customer,
                flag.event_id,
                flag.timestamp.isoformat(timespec="seconds"),
                flag.kind,
                flag.flagged_at.isoformat(timespec="seconds"),
                _resolution(flag.resolution) or "open",
            )
        console.print(table)
        if page.has_more:
            console.print(f"(the newest {LIMIT_MAX} only)")
