"""`tally usage …`: query usage, check the rollups against raw events, roll up the queue now."""

from __future__ import annotations

import json
from datetime import datetime

import typer
from rich.table import Table

from tally.adapters.ids import TENANT, format_id
from tally.cli._context import console, open_tally, rejections_as_errors, resolve_tenant
from tally.cli.bench import app as bench_app
from tally.core.metering.usage import Granularity, quantity_text
from tally.core.rejections import InvariantViolation

app = typer.Typer(help="Usage: queries, rollup verification.", no_args_is_help=True)

TenantOption = typer.Option(None, "--tenant", envvar="TALLY_TENANT", help="Tenant id or name.")


def _moment(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{name} must be an ISO 8601 time with a UTC offset") from None
    if moment.tzinfo is None:
        raise typer.BadParameter(f"{name} needs a UTC offset (e.g. 2026-11-01T00:00:00Z)")
    return moment


@app.command("query")
def query(
    customer: str = typer.Option(..., "--customer", help="The customer id events carry."),
    meter: str = typer.Option(..., "--meter", help="The meter code."),
    start: str = typer.Option(..., "--from", help="Window start, inclusive (ISO 8601 with offset)."),
    end: str = typer.Option(..., "--to", help="Window end, exclusive (ISO 8601 with offset)."),
    granularity: Granularity = typer.Option(Granularity.TOTAL, "--granularity", help="hour, day, month or total."),
    group_by: list[str] = typer.Option([], "--group-by", help="A group_by key of the meter (repeatable)."),
    meter_version: int | None = typer.Option(None, "--meter-version", min=1, help="Default: the latest."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (values as strings) instead of a table."),
    tenant: str | None = TenantOption,
) -> None:
    """One customer's usage of one meter over [from, to), exact."""
    from tally.app.query_usage import UsageRequest, query_usage

    with open_tally() as tally, rejections_as_errors():
        result = query_usage(
            tally.engine,
            resolve_tenant(tally, tenant),
            UsageRequest(
                customer=customer,
                meter_code=meter,
                start=_moment(start, "--from"),
                end=_moment(end, "--to"),
                granularity=granularity,
                group_by=tuple(group_by),
                meter_version=meter_version,
            ),
        )
    rows = [
        {
            "from": row.bucket.start.isoformat(),
            "to": row.bucket.end.isoformat(),
            "group": result.group_dict(row),
            "value": quantity_text(row.value) if row.value is not None else None,
            "event_count": row.event_count,
            "skipped_events": row.skipped_events,
        }
        for row in result.rows
    ]
    if as_json:
        document = {
            "meter": result.query.meter.code,
            "meter_version": result.query.meter.version,
            "skipped_events": result.skipped_events,
            "data": rows,
        }
        print(json.dumps(document))
        return
    table = Table(title=f"{result.query.meter.code} v{result.query.meter.version} · {customer} ({result.source})")
    for column in ("from", "to", *result.query.group_by, "value", "events", "skipped"):
        table.add_column(column, justify="right" if column in ("value", "events", "skipped") else "left")
    for row in rows:
        group = row["group"]
        if not isinstance(group, dict):
            raise InvariantViolation("a usage row's group is an object")
        table.add_row(
            str(row["from"]),
            str(row["to"]),
            *(str(group[key]) for key in result.query.group_by),
            str(row["value"]) if row["value"] is not None else "—",
            str(row["event_count"]),
            str(row["skipped_events"]),
        )
    console.print(table)
    if result.skipped_events:
        console.print(f"{result.skipped_events} matching events skipped: their value is missing or not numeric.")


@app.command("verify")
def verify(
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant (id or name); default: all."),
    meter: str | None = typer.Option(None, "--meter", help="Only this meter code."),
    since: str | None = typer.Option(
        None, "--since", help="Check hours from this time on (default: all retained raw events)."
    ),
) -> None:
    """Recompute every rollup from raw effective events and compare. Exit code 1 on any difference."""
    from tally.app.verify_usage_rollups import retained_since, verify_usage_rollups

    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant) if tenant is not None else None
        start = (
            _moment(since, "--since")
            if since is not None
            else retained_since(tally.clock.now(), tally.settings.event_retention_days)
        )
        report = verify_usage_rollups(tally.engine, tenant_id, meter, start)
    table = Table(title="usage rollups vs raw events")
    for column in ("tenant", "meter", "version", "state", "rows", "pending cells", "differences"):
        table.add_column(
            column, justify="right" if column in ("version", "rows", "pending cells", "differences") else "left"
        )
    for version in report.versions:
        table.add_row(
            format_id(TENANT, version.tenant_id),
            version.meter_code,
            str(version.version),
            version.state,
            str(version.rows_stored),
            str(version.pending_cells),
            f"[bold red]{version.difference_count}[/bold red]" if version.difference_count else "0",
        )
    console.print(table)
    for version in report.versions:
        for difference in version.sample:
            console.print(
                f"  {version.meter_code} v{version.version}: {difference.span} {difference.customer} "
                f"{difference.start.isoformat()} {list(difference.group_values)}: {difference.what}",
                highlight=False,
            )
    if not report.ok:
        console.print(f"[bold red]{report.difference_count} differences[/bold red]")
        raise typer.Exit(1)
    console.print(f"rollups match raw events ({len(report.versions)} meter versions)")


@app.command("roll-up")
def roll_up(
    batches: int = typer.Option(1000, "--batches", min=1, help="Stop after this many passes (each one transaction)."),
) -> None:
    """Roll up queued batches now (the worker does it continuously); then backfill every new meter
    version (of every tenant) still pending."""
    from tally.app.backfill_meter_rollups import backfill_pending_versions
    from tally.app.roll_up_events import roll_up_events

    with open_tally() as tally:
        done = 0
        for _ in range(batches):
            outcome = roll_up_events(tally.engine)
            if outcome.batches == 0:
                break
            done += outcome.batches
        backfilled = backfill_pending_versions(tally.engine, tally.clock, versions_max=None)
    console.print(f"rolled up {done} batches; backfilled {len(backfilled)} meter versions")


@bench_app.command("usage")
def bench_usage(
    events: int = typer.Option(10_000_000, min=1_000, help="Events stored (set-based load, no HTTP)."),
    customers: int = typer.Option(10_000, min=1, help="Customers the events are spread over (heavy-tailed)."),
    queries: int = typer.Option(1_000, min=10, help="Timed current-period queries (and as many baselines)."),
    probes: int = typer.Option(200, min=1, help="Events ingested one at a time to measure the visible lag."),
    load_events_per_second: int = typer.Option(
        2_000, min=0, help="Background ingest while probing, so the rollup worker has work."
    ),
    database_url: str | None = typer.Option(
        None, "--database-url", help="PostgreSQL URL (default: a fresh database on the embedded server, dropped after)."
    ),
    keep: bool = typer.Option(False, "--keep", help="Keep the fresh database (to look at it afterwards)."),
    seed: int = typer.Option(1, help="Seed of the workload."),
) -> None:
    """Usage queries on millions of events (p99, with a raw-scan baseline) and ingest-to-visible lag."""
    from tally.bench import usage as usage_bench

    options = usage_bench.UsageBenchOptions(
        events=events,
        customers=customers,
        queries=queries,
        probes=probes,
        load_events_per_second=load_events_per_second,
        database_url=database_url,
        keep=keep,
        seed=seed,
    )
    print(usage_bench.run(options).to_json())
