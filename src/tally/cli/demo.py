"""`tally demo`: load demo data into a tenant named "demo" (what `make run` does on an empty database)."""

from __future__ import annotations

import typer
from rich.table import Table

from tally.app.api_keys import create_api_key
from tally.app.ledger_queries import aggregated_balances
from tally.app.load_demo import load_demo as load_demo_data
from tally.app.tenants import create_tenant, find_tenants_by_name
from tally.bootstrap import Tally
from tally.cli._context import console, open_tally

DEMO_TENANT = "demo"


def load_demo(tally: Tally) -> None:
    """Load (or re-load, a no-op) the demo into the "demo" tenant and print its balances."""
    found = find_tenants_by_name(tally.engine, DEMO_TENANT)
    tenant_id = found[0].id if found else create_tenant(tally.engine, DEMO_TENANT)
    summary = load_demo_data(tally.engine, tally.clock, tenant_id)
    table = Table(title="Demo ledger balances (tenant 'demo')")
    for column in ("code", "customer", "unit", "debits", "credits", "pending d/c"):
        table.add_column(column, justify="right" if column in {"debits", "credits"} else "left")
    for group in aggregated_balances(tally.engine, tenant_id, ["code", "customer"]):
        balances = group.balances
        table.add_row(
            str(group.key["code"]),
            str(group.key["customer"] or "—"),
            group.unit_code,
            f"{balances.debits_posted:,}",
            f"{balances.credits_posted:,}",
            f"{balances.debits_pending:,}/{balances.credits_pending:,}",
        )
    console.print(table)
    console.print(
        f"demo: {summary.transactions_posted} transactions posted, {summary.transactions_replayed} already there"
    )


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        with_key: bool = typer.Option(False, "--with-key", help="Also create an admin API key for the demo tenant."),
    ) -> None:
        """Load demo data (idempotent: running it again changes nothing)."""
        with open_tally() as tally:
            load_demo(tally)
            if with_key:
                tenant_id = find_tenants_by_name(tally.engine, DEMO_TENANT)[0].id
                created = create_api_key(tally.engine, tenant_id, "demo", ["admin"])
                console.print(f"admin API key (shown once): [bold]{created[1]}[/bold]")
