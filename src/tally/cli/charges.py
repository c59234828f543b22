"""`tally charge create|list|cancel`: one-off charges (invoice items). Customers are named by `cus_…`
or external id, prices by `price_…` or code."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

import typer
from rich.table import Table

from tally.adapters import ids
from tally.cli._context import audit, console, fail, open_tally, rejections_as_errors, resolve_customer, resolve_tenant

app = typer.Typer(help="One-off charges: create, list, cancel.", no_args_is_help=True)

TenantOption = typer.Option(None, "--tenant", envvar="TALLY_TENANT", help="Tenant id or name.")


@app.command("create")
def create(
    customer: str,
    price: str,
    quantity: str = typer.Option("1", "--quantity", help="Above 0; decimals allowed (1.5 hours)."),
    description: str = typer.Option("", "--description"),
    charged_at: datetime | None = typer.Option(None, "--charged-at", help="Default: the customer's now."),
    invoice_now: bool = typer.Option(False, "--invoice-now", help="Bill it at once on its own, finalized invoice."),
    due_in_days: int = typer.Option(30, "--due-in-days", help="With --invoice-now."),
    idempotency_key: str | None = typer.Option(None, "--idempotency-key"),
    tenant: str | None = TenantOption,
) -> None:
    """Charge a customer once: pending until its next invoice, or invoiced now with --invoice-now."""
    from tally.app.create_charge import ChargeInput, create_charge

    try:
        amount = Decimal(quantity)
    except InvalidOperation:
        fail("value_must_be_number", f"{quantity!r} is not a number")
    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        price_id = ids.parse_id(ids.PRICE, price)
        created = create_charge(
            tally.engine,
            tally.clock,
            tenant_id,
            ChargeInput(
                customer_id=resolve_customer(tally, tenant_id, customer),
                price_id=price_id,
                price_code=None if price_id is not None else price,
                quantity=amount,
                description=description,
                charged_at=charged_at,
                invoice_now=invoice_now,
                due_in_days=due_in_days,
                idempotency_key=idempotency_key,
            ),
        )
        charge = ids.format_id(ids.ONE_OFF_CHARGE, created.charge.id)
        if not created.replayed:
            audit(tally, tenant_id, "charge.create", "charge", charge)
        invoice = (
            "" if created.charge.invoice_id is None else " " + ids.format_id(ids.INVOICE, created.charge.invoice_id)
        )
        console.print(f"{charge} {created.charge.status}{invoice}")


@app.command("list")
def list_charges(
    customer: str,
    status: str | None = typer.Option(None, "--status", help="pending, invoiced or cancelled."),
    tenant: str | None = TenantOption,
) -> None:
    """A customer's charges, newest first (the latest 100)."""
    from tally.adapters.pagination import LIMIT_MAX, PageRequest
    from tally.app import charge_queries

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        page = charge_queries.list_charges(
            tally.engine,
            tenant_id,
            resolve_customer(tally, tenant_id, customer),
            PageRequest(limit=LIMIT_MAX),
            status=status,
        )
        table = Table(title="charges")
        for column in ("charge", "price", "quantity", "description", "charged at", "status", "invoice"):
            table.add_column(column)
        for row in page.items:
            table.add_row(
                ids.format_id(ids.ONE_OFF_CHARGE, row.id),
                row.price_code,
                str(row.quantity),
                row.description,
                row.charged_at.isoformat(),
                row.status,
                "" if row.invoice_id is None else ids.format_id(ids.INVOICE, row.invoice_id),
            )
        console.print(table)


@app.command("cancel")
def cancel(charge: str, tenant: str | None = TenantOption) -> None:
    """Cancel a pending charge (an invoiced one is credited with a credit note instead)."""
    from tally.app.cancel_charge import cancel_charge

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        charge_id = ids.parse_id(ids.ONE_OFF_CHARGE, charge)
        if charge_id is None:
            fail("charge_not_found", f"{charge!r} is not a chg_… id")
        row = cancel_charge(tally.engine, tally.clock, tenant_id, charge_id)
        audit(tally, tenant_id, "charge.cancel", "charge", charge)
        console.print(f"{charge} {row.status}")
