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


@app.command("settings")
def settings(
    tenant: str = typer.Argument(..., help="Tenant id or name."),
    late_usage_policy: str | None = typer.Option(
        None,
        "--late-usage-policy",
        help="next_invoice (a correction line on the next invoice) or separate (an extra invoice, or a credit note).",
    ),
) -> None:
    """Show a tenant's billing settings, or change them (each change is kept on record)."""
    from tally.app.tenant_billing_settings import BillingSettingsInput, get_billing_settings, set_billing_settings
    from tally.cli._context import resolve_tenant

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        if late_usage_policy is None:
            current = get_billing_settings(tally.engine, tenant_id)
        else:
            current, changed = set_billing_settings(
                tally.engine, tally.clock, tenant_id, BillingSettingsInput(late_usage_policy=late_usage_policy)
            )
            if changed:
                record_audit(
                    tally.engine,
                    AuditEntry(
                        tenant_id=tenant_id,
                        actor=ACTOR_CLI,
                        action="tally tenants settings",
                        object_type="billing_settings",
                        object_id=format_id(TENANT, tenant_id),
                    ),
                )
        recorded = "default" if current.recorded_at is None else current.recorded_at.isoformat(timespec="seconds")
        console.print(f"late_usage_policy: {current.late_usage_policy.value} ({recorded})", highlight=False)
