"""`tally jobs …`: run a job now, look at recent workflows, recover a dead worker's work."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import typer
from rich.table import Table

from tally.cli._context import console, error_console, fail, open_tally

app = typer.Typer(help="Durable jobs: the integrity check, workflow status, recovery.", no_args_is_help=True)

_INTEGRITY_MODULE = "tally.app.check_ledger_integrity"
DISCREPANCIES_SHOWN_MAX = 1000


@app.command("run-integrity-check")
def run_integrity_check_now(
    show: int = typer.Option(100, min=1, max=DISCREPANCIES_SHOWN_MAX, help="Show at most this many discrepancies."),
) -> None:
    """Check the ledger now, in this process; exit code 1 if there is any discrepancy.

    Records the run in integrity_runs, as the scheduled check does.
    """
    with open_tally() as tally:
        try:
            from tally.app.check_ledger_integrity import run_integrity_check
        except ImportError as error:
            if error.name != _INTEGRITY_MODULE:
                raise
            fail("integrity_check_unavailable", f"this build has no ledger integrity check ({error})")
        report = run_integrity_check(tally.engine, tally.clock)
    discrepancy_count = int(report.discrepancy_count)
    if discrepancy_count == 0:
        console.print("[green]ledger integrity check: no discrepancies[/green]")
        return
    columns, rows = _discrepancy_table(getattr(report, "discrepancies", ()))
    table = Table(title=f"ledger integrity check: {discrepancy_count} discrepancies", title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows[:show]:
        table.add_row(*row)
    console.print(table)
    # The report may itself hold fewer discrepancies than it counted; the count is exact.
    not_shown = discrepancy_count - min(show, len(rows))
    if not_shown > 0:
        console.print(f"… and {not_shown} more (--show, or the integrity_runs table)")
    raise typer.Exit(1)


@app.command("list")
def list_workflows(
    limit: int = typer.Option(20, min=1, max=1000, help="How many workflows, newest first."),
    status: str | None = typer.Option(None, help="Only this status: PENDING, ENQUEUED, SUCCESS, ERROR, …"),
    name: str | None = typer.Option(None, help="Only this workflow, e.g. tally.ledger_integrity_check."),
) -> None:
    """Show the most recent workflows and their status."""
    from tally.worker import admin, runtime

    if status is not None and status.upper() not in admin.WORKFLOW_STATUSES:
        fail("status_unknown", f"status must be one of {', '.join(admin.WORKFLOW_STATUSES)}")
    with open_tally() as tally, runtime.open_client(tally) as client:
        workflows = admin.recent_workflows(
            client, limit=limit, status=None if status is None else status.upper(), name=name
        )
    if not workflows:
        console.print("no workflows")
        return
    table = Table(title_justify="left")
    for column in ("workflow id", "name", "status", "queue", "executor", "created", "updated", "error"):
        table.add_column(column, overflow="fold")
    for workflow in workflows:
        table.add_row(
            workflow.workflow_id,
            workflow.name,
            _styled_status(workflow.status),
            workflow.queue_name or "",
            workflow.executor_id or "",
            _time(workflow.created_at),
            _time(workflow.updated_at),
            workflow.error or "",
        )
    console.print(table)


@app.command("recover")
def recover(
    executor: str = typer.Option(..., help="The executor id of a worker that is gone for good."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Hand the unfinished workflows of a dead worker to the running ones.

    A worker restarted under its old executor id recovers its own; this is for a worker that will
    not come back. Never use it on a live worker: its workflows would run twice at the same time.
    """
    from tally.worker import admin, runtime

    if not yes:
        typer.confirm(f"Is the worker with executor id {executor!r} stopped for good?", abort=True)
    with open_tally() as tally, runtime.open_client(tally) as client:
        recovered = admin.recover_executor(client, executor)
    if not recovered:
        error_console.print(f"executor {executor!r} has no unfinished workflows")
        return
    console.print(f"re-enqueued {len(recovered)} workflows of executor {executor!r}:")
    for workflow_id in recovered:
        console.print(f"  {workflow_id}", highlight=False)


def _discrepancy_table(discrepancies: Sequence[Any]) -> tuple[list[str], list[list[str]]]:
    """Columns and rows for any shape of discrepancy: dataclass, mapping, or anything printable."""
    records: list[dict[str, Any]] = []
    for discrepancy in discrepancies:
        if dataclasses.is_dataclass(discrepancy) and not isinstance(discrepancy, type):
            records.append(dataclasses.asdict(discrepancy))
        elif isinstance(discrepancy, Mapping):
            records.append(dict(discrepancy))
        else:
            records.append({"discrepancy": discrepancy})
    columns: list[str] = []
    for record in records:
        columns.extend(key for key in record if key not in columns)
    rows = [["" if record.get(column) is None else str(record.get(column)) for column in columns] for record in records]
    return columns or ["discrepancy"], rows


def _styled_status(status: str) -> str:
    style = {"SUCCESS": "green", "ERROR": "red", "MAX_RECOVERY_ATTEMPTS_EXCEEDED": "red", "PENDING": "yellow"}
    return f"[{style[status]}]{status}[/{style[status]}]" if status in style else status


def _time(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")
