"""`tally api-keys …`: create (the secret is printed once), list, revoke."""

from __future__ import annotations

import uuid

import typer
from rich.panel import Panel
from rich.table import Table

from tally.adapters.ids import API_KEY, TENANT, format_id, parse_id
from tally.adapters.pagination import LIMIT_MAX, PageRequest
from tally.app.api_keys import SCOPES, ApiKey, create_api_key, list_api_keys, revoke_api_key, tenant_of_api_key
from tally.app.audit import ACTOR_CLI, AuditEntry, record_audit
from tally.cli._context import console, fail, open_tally, rejections_as_errors, resolve_tenant
from tally.cli._tenant_choice import find_or_create_tenant

app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)

DEFAULT_TENANT = "default"
LISTED_MAX = 1000


@app.command("create")
def create(
    tenant: str = typer.Option(
        DEFAULT_TENANT, "--tenant", help="Tenant name or id (ten_…). A name no tenant has creates the tenant."
    ),
    name: str = typer.Option("default", "--name", help="A label for people, e.g. where the key is used."),
    scope: list[str] = typer.Option(
        ["admin"], "--scope", help=f"Repeatable: {', '.join(sorted(SCOPES))}. admin implies the others."
    ),
) -> None:
    """Create an API key and print it once. Only its hash is stored: it cannot be shown again."""
    with open_tally() as tally, rejections_as_errors():
        tenant_id, tenant_created = find_or_create_tenant(tally, tenant)
        key, secret = create_api_key(tally.engine, tenant_id, name, scope)
        record_audit(
            tally.engine,
            AuditEntry(
                tenant_id=tenant_id,
                actor=ACTOR_CLI,
                action="tally api-keys create",
                object_type="api_key",
                object_id=format_id(API_KEY, key.id),
                details={"scopes": list(key.scopes), "name": key.name},
            ),
        )
    lines = [
        f"[bold]{secret}[/bold]",
        "",
        f"key     {format_id(API_KEY, key.id)}  ({key.name})",
        f"tenant  {format_id(TENANT, tenant_id)}  ({tenant}{', created' if tenant_created else ''})",
        f"scopes  {', '.join(key.scopes)}",
        "",
        "Shown once: store it now. Use it as  Authorization: Bearer <key>",
    ]
    console.print(Panel("\n".join(lines), title="New API key", expand=False), highlight=False)


@app.command("list")
def list_(
    tenant: str | None = typer.Option(None, "--tenant", help="Tenant name or id (default: the only tenant)."),
) -> None:
    """List a tenant's API keys, newest first (revoked ones included)."""
    with open_tally() as tally:
        tenant_id = resolve_tenant(tally, tenant)
        keys: list[ApiKey] = []
        page = PageRequest(limit=LIMIT_MAX)
        while len(keys) < LISTED_MAX:
            found = list_api_keys(tally.engine, tenant_id, page)
            keys.extend(found.items)
            if not found.has_more or not found.items:
                break
            page = PageRequest(limit=LIMIT_MAX, starting_after=found.items[-1].id)
    table = Table(title=f"API keys of {format_id(TENANT, tenant_id)}")
    table.add_column("id", no_wrap=True)
    for column in ("name", "scopes", "secret", "created", "last used", "revoked"):
        table.add_column(column)
    for key in keys:
        table.add_row(
            format_id(API_KEY, key.id),
            key.name,
            ", ".join(key.scopes),
            f"…{key.secret_hint}",
            key.created_at.isoformat(timespec="seconds"),
            key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "—",
            key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "—",
        )
    console.print(table)


@app.command("revoke")
def revoke(key_id: str = typer.Argument(..., help="The key's id (key_…), not its secret.")) -> None:
    """Revoke an API key for good. Running servers stop accepting it within a few seconds."""
    parsed = parse_id(API_KEY, key_id)
    if parsed is None:
        try:
            parsed = uuid.UUID(key_id)
        except ValueError:
            fail("api_key_not_found", f"{key_id!r} is not an API key id (key_…)")
    with open_tally() as tally, rejections_as_errors():
        tenant_id = tenant_of_api_key(tally.engine, parsed)
        if tenant_id is None:
            fail("api_key_not_found", f"no API key {key_id}")
        key = revoke_api_key(tally.engine, tenant_id, parsed)
        record_audit(
            tally.engine,
            AuditEntry(
                tenant_id=tenant_id,
                actor=ACTOR_CLI,
                action="tally api-keys revoke",
                object_type="api_key",
                object_id=format_id(API_KEY, key.id),
            ),
        )
    revoked_at = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "?"
    console.print(f"revoked {format_id(API_KEY, key.id)} ({key.name}) at {revoked_at}", highlight=False)
