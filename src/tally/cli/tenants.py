"""`tally tenants …`: create and list tenants (the API never creates them)."""

from __future__ import annotations

import typer
from rich.table import Table

from tally.adapters.ids import TENANT, format_id
from tally.app.audit import ACTOR_CLI, AuditEntry, record_audit
from tally.app.tenants import TENANTS_LISTED_MAX, create_tenant, list_tenants
from tally.cli._context import console, open_tally, rejections_as_errors

app = typer.Typer(help="Tenants: every object belongs to one.", no_args_is_help=True)


@app.command("create")
def create(name: str = typer.Argument(..., help="A label for people; need not be unique.")) -> None:
    """Create a tenant and print its id."""
    with open_tally() as tally, rejections_as_errors():
        tenant_id = create_tenant(tally.engine, name)
        record_audit(
            tally.engine,
            AuditEntry(
                tenant_id=tenant_id,
                actor=ACTOR_CLI,
                action="tally tenants create",
                object_type="tenant",
                object_id=format_id(TENANT, tenant_id),
            ),
        )
        console.print(format_id(TENANT, tenant_id), highlight=False)


@app.command("list")
def list_() -> None:
    """List tenants, newest first."""
    with open_tally() as tally:
        tenants = list_tenants(tally.engine)
    table = Table(title="Tenants")
    table.add_column("id", no_wrap=True)
    table.add_column("name")
    table.add_column("created")
    for tenant in tenants:
        table.add_row(format_id(TENANT, tenant.id), tenant.name, tenant.created_at.isoformat(timespec="seconds"))
    console.print(table)
    if len(tenants) == TENANTS_LISTED_MAX:
        console.print(f"(the newest {TENANTS_LISTED_MAX} only)")
