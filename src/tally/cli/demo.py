"""`tally demo`: load the demo into a tenant named "demo" (what `make run` does on an empty database)
and print where each demo customer stands."""

from __future__ import annotations

from decimal import Decimal

import typer
from rich.table import Table

from tally.app.api_keys import create_api_key
from tally.app.load_demo import DemoSummary
from tally.app.load_demo import load_demo as load_demo_data
from tally.app.tenants import create_tenant, find_tenants_by_name
from tally.bootstrap import Tally
from tally.cli._context import console, open_tally
from tally.core import money

DEMO_TENANT = "demo"


def load_demo(tally: Tally) -> DemoSummary:
    """Load (or re-load, a no-op) the demo into the "demo" tenant and print a summary per customer."""
    found = find_tenants_by_name(tally.engine, DEMO_TENANT)
    tenant_id = found[0].id if found else create_tenant(tally.engine, DEMO_TENANT)
    summary = load_demo_data(tally.engine, tally.clock, tenant_id)
    console.print(summary_table(summary))
    wrote = f"{summary.writes} steps written, {summary.events_stored:,} usage events stored"
    console.print(f"demo: {wrote if summary.writes else 'already loaded, nothing written'}", highlight=False)
    return summary


def summary_table(summary: DemoSummary) -> Table:
    day = summary.clock_time.date().isoformat()
    table = Table(title=f"Demo customers (tenant 'demo', test clock at {day})")
    columns = ("customer", "plan", "invoices", "charges", "discounts", "credits used", "paid", "open", "credits left")
    for column in columns:
        table.add_column(column, justify="left" if column in {"customer", "plan"} else "right")
    for row in summary.customers:
        table.add_row(
            row.external_id,
            row.plan,
            str(row.invoices),
            *(
                _amount(amount, row.currency)
                for amount in (
                    row.charges_minor,
                    row.discount_minor,
                    row.credits_used_minor,
                    row.paid_minor,
                    row.open_minor,
                    row.credits_left_minor,
                )
            ),
        )
    return table


def _amount(amount_minor: int, currency: str) -> str:
    if amount_minor == 0:
        return "—"
    value: Decimal = money.decimal_from_minor(amount_minor, money.currency(currency))
    return f"{value:,} {currency}"


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        with_key: bool = typer.Option(False, "--with-key", help="Also create an admin API key for the demo tenant."),
    ) -> None:
        """Load the demo: a catalog, five customers and three months of invoices (idempotent)."""
        with open_tally() as tally:
            load_demo(tally)
            if with_key:
                tenant_id = find_tenants_by_name(tally.engine, DEMO_TENANT)[0].id
                created = create_api_key(tally.engine, tenant_id, "demo", ["admin"])
                console.print(f"admin API key (shown once): [bold]{created[1]}[/bold]")
