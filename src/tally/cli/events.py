"""`tally events import FILE`: bulk-load usage events from NDJSON or CSV (optionally gzip).

Straight into the database through the same ingest use case as `POST /v1/events` (source
`import`), in chunks, so files of any size load in bounded memory. Importing a file again counts
nothing twice: every event comes back a duplicate. The file formats are described in
`tally.adapters.event_files` and docs/metering.md.

Exit code 0 when every line was stored (accepted or duplicate), 1 when any was rejected or
conflicted (`--rejects FILE` collects those lines, as they were, to fix and import again).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn
from rich.table import Table

from tally.adapters.event_files import EventFile, EventFileError, RejectsWriter
from tally.adapters.gc_tuning import tune_for_bulk_work
from tally.app.import_events import (
    JOBS_MAX,
    REFUSALS_KEPT_MAX,
    ChunkOutcome,
    ImportOptions,
    ImportSummary,
    import_event_file,
)
from tally.app.ingest_events import IngestOptions
from tally.cli._context import audit, console, error_console, fail, open_tally, resolve_tenant
from tally.core.metering.events import EVENTS_PER_BATCH_MAX

app = typer.Typer(help="Usage events.", no_args_is_help=True)

PARALLEL_FILE_BYTES_MIN = 16 * 1024 * 1024
JOBS_DEFAULT_MAX = 4

FileFormatOption = Literal["ndjson", "csv"]


@app.command("import")
def import_file(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="NDJSON or CSV, maybe .gz."),
    tenant: str | None = typer.Option(None, "--tenant", envvar="TALLY_TENANT", help="Tenant id or name."),
    batch_size: int = typer.Option(
        EVENTS_PER_BATCH_MAX, "--batch-size", min=1, max=EVENTS_PER_BATCH_MAX, help="Events per ingest transaction."
    ),
    file_format: str | None = typer.Option(
        None, "--format", help="ndjson or csv (default: from the file name: .ndjson/.jsonl/.json or .csv, ± .gz)."
    ),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        min=1,
        max=JOBS_MAX,
        help="Worker processes decoding and ingesting chunks in parallel (default: 1 for files under "
        "16 MiB, else the CPU count, at most 4).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only validate; write nothing."),
    rejects: Path | None = typer.Option(
        None, "--rejects", dir_okay=False, help="Write refused lines here, as they were (CSV: with the header)."
    ),
    show: int = typer.Option(
        20, "--show", min=0, max=REFUSALS_KEPT_MAX, help="How many refusals to list with their line numbers."
    ),
) -> None:
    """Import usage events from a file; re-running it counts nothing twice."""
    if file_format not in (None, "ndjson", "csv"):
        fail("format_unknown", f"--format must be ndjson or csv, not {file_format!r}")
    if rejects is not None and rejects.resolve() == path.resolve():
        fail("rejects_is_the_input", "--rejects must name another file than the one imported")
    with open_tally() as tally:
        options = ImportOptions(
            batch_size=batch_size,
            dry_run=dry_run,
            jobs=jobs or _default_jobs(path),
            refusals_kept=show,
            ingest=IngestOptions.from_settings(tally.settings),
        )
        tenant_id = resolve_tenant(tally, tenant)
        tune_for_bulk_work()  # this process decodes and ingests too (one job) or tallies the workers' answers
        try:
            source = EventFile(path, file_format)  # type: ignore[arg-type]
        except EventFileError as error:
            fail("file_format_unknown", str(error))
        with source, _progress() as progress:
            task = progress.add_task("importing", total=source.size_bytes, lines=0)
            writer = RejectsWriter(rejects, source) if rejects is not None else None
            lines_done = 0

            def on_chunk(chunk: ChunkOutcome) -> None:
                nonlocal lines_done
                lines_done += chunk.lines
                if writer is not None:
                    for outcome in chunk.refused:
                        writer.write(outcome.record)
                progress.update(task, completed=source.bytes_read, lines=lines_done)

            try:
                summary = import_event_file(tally.engine, tally.clock, tenant_id, source, options, on_chunk=on_chunk)
            except EventFileError as error:
                fail("file_unreadable", str(error))
            finally:
                if writer is not None:
                    writer.close()
            progress.update(task, completed=source.size_bytes)
        if not dry_run and summary.accepted:
            audit(tally, tenant_id, "tally events import", "event_import", path.name)
    _print_summary(path, summary, dry_run=dry_run, rejects=rejects)
    if summary.refused:
        raise typer.Exit(1)


def _default_jobs(path: Path) -> int:
    """Small files: one process (starting workers costs a second or two). Large ones: one per CPU."""
    if path.stat().st_size < PARALLEL_FILE_BYTES_MIN:
        return 1
    return max(1, min(os.cpu_count() or 1, JOBS_DEFAULT_MAX))


def _progress() -> Progress:
    """Bytes of the file on disk (compressed, for gzip) and lines so far, on stderr when it is a terminal."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[lines]:,} lines"),
        TimeElapsedColumn(),
        console=error_console,
        disable=not error_console.is_terminal,
    )


def _print_summary(path: Path, summary: ImportSummary, *, dry_run: bool, rejects: Path | None) -> None:
    table = Table(title=f"{path.name}: {summary.lines:,} lines" + (" (dry run: nothing written)" if dry_run else ""))
    table.add_column("result")
    table.add_column("events", justify="right")
    rows = (
        [("valid", summary.valid), ("rejected", summary.rejected)]
        if dry_run
        else [
            ("accepted", summary.accepted),
            ("duplicates", summary.duplicates),
            ("conflicts", summary.conflicts),
            ("rejected", summary.rejected),
        ]
    )
    for name, count in rows:
        style = "red" if name in ("conflicts", "rejected") and count else ""
        table.add_row(name, f"[{style}]{count:,}[/{style}]" if style else f"{count:,}")
    console.print(table)
    if summary.first_refusals:
        refusals = Table(
            title=f"first {len(summary.first_refusals)} of {summary.refused:,} refused lines"
            + (f" (all in {rejects})" if rejects else "")
        )
        # Codes are what a reader greps for: never wrapped. Ids and reasons wrap when space is short.
        for column, wrap in (("line", False), ("id", True), ("result", False), ("code", False), ("field", False)):
            refusals.add_column(column, no_wrap=not wrap, overflow="fold")
        refusals.add_column("why", overflow="fold")
        for outcome in summary.first_refusals:
            refusals.add_row(
                str(outcome.record.line_number),
                _printable(outcome.event_id or ""),
                outcome.status,
                outcome.code or "",
                _printable(outcome.field or ""),
                _printable(outcome.message or ""),
            )
        console.print(refusals)


def _printable(text: str) -> str:
    """Text from the file as a terminal can show it (bytes that were not UTF-8 escaped)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
