"""`tally catalog plan|apply FILES…`: the catalog as code.

    tally catalog plan catalog/            # what would change (exit 0), like `terraform plan`
    tally catalog apply catalog/ --json    # apply it in one transaction; again: nothing to do

FILES are YAML files or directories of them (docs/catalog.md). `plan` changes nothing; `apply`
changes everything or nothing, and applying the same files twice changes nothing the second time.
"""

from __future__ import annotations

import json

import typer
from rich.table import Table

from tally.cli._context import audit, console, open_tally, rejections_as_errors, resolve_tenant
from tally.core.rejections import InvariantViolation

app = typer.Typer(help="Catalog as code: plan and apply YAML catalog files.", no_args_is_help=True)

TenantOption = typer.Option(None, "--tenant", envvar="TALLY_TENANT", help="Tenant id or name.")
FilesArgument = typer.Argument(..., help="Catalog YAML files, or directories of them.")
JsonOption = typer.Option(False, "--json", help="Print the changes as JSON.")

_STYLE = {
    "create": ("+", "green"),
    "update": ("~", "yellow"),
    "new_version": ("+v", "cyan"),
    "replace": ("-/+", "magenta"),
    "archive": ("-", "red"),
}


def _show(document: dict[str, object], *, applied: bool, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps({"applied": applied, **document}))
        return
    changes = document["changes"]
    if not isinstance(changes, list):
        raise InvariantViolation("a catalog plan lists its changes")
    if not changes:
        console.print("[green]No changes.[/green] The catalog matches the files.")
        return
    table = Table("", "section", "code", "action", "detail")
    for change in changes:
        sign, colour = _STYLE[change["action"]]
        detail = ", ".join(change["fields"])
        if change["version"] is not None:
            detail = f"version {change['version']}" + (f" ({detail})" if detail else "")
        table.add_row(f"[{colour}]{sign}[/{colour}]", change["section"], change["code"], change["action"], detail)
    console.print(table)
    summary = document["summary"]
    if not isinstance(summary, dict):
        raise InvariantViolation("a catalog plan has a summary object")
    counts = ", ".join(f"{count} {action}" for action, count in summary.items() if count)
    console.print(f"{'Applied' if applied else 'Plan'}: {counts}.")


@app.command("plan")
def plan(files: list[str] = FilesArgument, as_json: bool = JsonOption, tenant: str | None = TenantOption) -> None:
    """Show what `apply` would change. Changes nothing."""
    from tally.app.catalog_files import load_catalog_files
    from tally.app.plan_catalog import plan_catalog

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        planned = plan_catalog(tally.engine, tenant_id, load_catalog_files(files))
    _show(planned.document(), applied=False, as_json=as_json)


@app.command("apply")
def apply(files: list[str] = FilesArgument, as_json: bool = JsonOption, tenant: str | None = TenantOption) -> None:
    """Make the catalog match the files, in one transaction (all or nothing)."""
    from tally.app.apply_catalog import apply_catalog
    from tally.app.catalog_files import load_catalog_files

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        applied = apply_catalog(tally.engine, tally.clock, tenant_id, load_catalog_files(files))
        if not applied.plan.empty:
            audit(tally, tenant_id, "tally catalog apply", "catalog", f"{len(applied.plan.changes)} changes")
    _show(applied.plan.document(), applied=True, as_json=as_json)
