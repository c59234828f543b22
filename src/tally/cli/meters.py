"""`tally meters …`: create, list and inspect meters."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import typer
from rich.table import Table

from tally.adapters.ids import METER, format_id
from tally.cli._context import audit, console, fail, open_tally, rejections_as_errors, resolve_tenant

app = typer.Typer(help="Meters: how events become quantities.", no_args_is_help=True)

TenantOption = typer.Option(None, "--tenant", envvar="TALLY_TENANT", help="Tenant id or name.")


def _filter(text: str) -> dict[str, Any]:
    """`property=value` (equals a string), or a JSON object {"property", "operator", "value"}."""
    if text.lstrip().startswith("{"):
        try:
            document = json.loads(text, parse_float=Decimal)
        except ValueError as error:
            fail("filter_invalid", f"--filter is not JSON: {error}")
        if not isinstance(document, dict):
            fail("filter_invalid", "--filter JSON must be an object")
        return document
    name, separator, value = text.partition("=")
    if not separator:
        fail("filter_invalid", "--filter is property=value or a JSON object")
    return {"property": name, "operator": "equals", "value": value}


@app.command("create")
def create(
    code: str = typer.Option(..., "--code", help="Stable code, e.g. tokens."),
    event_type: str = typer.Option(..., "--event-type", help="Events of this type are counted."),
    aggregation: str = typer.Option(
        "count", "--aggregation", help="count, sum, max, min, unique_count, latest, time_weighted_sum."
    ),
    value_property: str | None = typer.Option(None, "--value-property", help="The property aggregated."),
    time_unit: str | None = typer.Option(None, "--time-unit", help="time_weighted_sum: second, minute, hour, day."),
    filters: list[str] = typer.Option([], "--filter", help='property=value, or JSON {"property","operator","value"}.'),
    group_by: list[str] = typer.Option([], "--group-by", help="A property to group by (repeatable)."),
    name: str | None = typer.Option(None, "--name"),
    description: str = typer.Option("", "--description"),
    tenant: str | None = TenantOption,
) -> None:
    """Create a meter (or show it, if it exists with the same definition)."""
    from tally.app.create_meter import MeterInput, create_meter
    from tally.core.metering.meters import MeterDefinitionInput

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        created = create_meter(
            tally.engine,
            tally.clock,
            tenant_id,
            MeterInput(
                code=code,
                name=name,
                description=description,
                definition=MeterDefinitionInput(
                    event_type=event_type,
                    aggregation=aggregation,
                    value_property=value_property,
                    time_unit=time_unit,
                    filters=tuple(_filter(text) for text in filters),
                    group_by=tuple(group_by),
                ),
            ),
        )
        if created.created:
            audit(tally, tenant_id, "tally meters create", "meter", format_id(METER, created.state.meter.id))
    state = created.state
    verb = "created" if created.created else "exists"
    console.print(f"meter {state.meter.code} {verb}: version {state.version.version} ({state.version.rollup_state})")


@app.command("list")
def list_meters(tenant: str | None = TenantOption) -> None:
    """The tenant's meters and their latest versions."""
    from tally.adapters.pagination import LIMIT_MAX, PageRequest
    from tally.app.meter_queries import list_meters as find

    table = Table(title="meters")
    for column in ("code", "version", "event type", "aggregation", "value", "group by", "filters", "rollups"):
        table.add_column(column)
    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        page = PageRequest(limit=LIMIT_MAX)
        while True:
            found = find(tally.engine, tenant_id, page)
            for state in found.items:
                definition = state.version.definition
                table.add_row(
                    state.meter.code,
                    str(state.version.version),
                    definition.event_type,
                    definition.kind.value,
                    definition.value_property or "",
                    ", ".join(definition.group_by),
                    str(len(definition.filters)),
                    state.version.rollup_state,
                )
            if not found.has_more or not found.items:
                break
            page = PageRequest(limit=LIMIT_MAX, starting_after=found.items[-1].meter.id)
    console.print(table)
