"""`tally bench …`: benchmarks. Each prints exactly one JSON line on stdout."""

from __future__ import annotations

import typer

from tally.bench import ingest as ingest_bench
from tally.bench import ledger as ledger_bench

app = typer.Typer(help="Benchmarks (one JSON line each).", no_args_is_help=True)


@app.callback()
def benchmarks() -> None:
    """Benchmarks (one JSON line each)."""
    # A callback keeps `ledger` a subcommand even when this app runs on its own (bench/*.py).


@app.command("ledger")
def ledger(
    transfers: int = typer.Option(20_000, min=1, max=ledger_bench.TRANSFERS_MAX, help="Transfers per timed run."),
    workers: int = typer.Option(8, min=1, max=ledger_bench.WORKERS_MAX, help="Concurrent workers (threads)."),
    accounts: int = typer.Option(1_000, min=2, max=ledger_bench.ACCOUNTS_MAX, help="Wallets the transfers pick from."),
    batch_size: int = typer.Option(
        ledger_bench.BATCH_SIZE_MAX,
        min=1,
        max=ledger_bench.BATCH_SIZE_MAX,
        help="Transfers per post_batch call.",
    ),
    batch_workers: int = typer.Option(
        2, min=1, max=ledger_bench.WORKERS_MAX, help="Concurrent workers for the batches (they queue on locks)."
    ),
    database_url: str | None = typer.Option(
        None, "--database-url", help="PostgreSQL URL (default: tally's own database, the embedded server)."
    ),
    seed: int = typer.Option(1, help="Seed of the random workload."),
) -> None:
    """Ledger throughput: tally's post_transaction and post_batch, next to the simplest raw-SQL transfer."""
    options = ledger_bench.LedgerBenchOptions(
        transfers=transfers,
        workers=workers,
        accounts=accounts,
        batch_size=batch_size,
        batch_workers=batch_workers,
        database_url=database_url,
        seed=seed,
    )
    print(ledger_bench.run(options).to_json())


@app.command("ingest")
def ingest(
    events: int = typer.Option(2_000_000, min=1, max=ingest_bench.EVENTS_MAX, help="Events sent (resends included)."),
    duplicates: float = typer.Option(0.1, min=0.0, max=0.99, help="Fraction of the events that are resends."),
    batch_size: int = typer.Option(5_000, min=1, max=ingest_bench.BATCH_SIZE_MAX, help="Events per request."),
    workers: int = typer.Option(2, min=1, max=ingest_bench.WORKERS_MAX, help="API server processes (uvicorn)."),
    connections: int = typer.Option(
        4, min=1, max=ingest_bench.CONNECTIONS_MAX, help="Concurrent keep-alive connections of the sender."
    ),
    gzip: bool = typer.Option(False, "--gzip/--no-gzip", help="Send gzip-compressed bodies."),
    bulk: bool = typer.Option(True, "--bulk/--no-bulk", help="Also measure the library/CLI bulk import path."),
    bulk_jobs: int = typer.Option(2, "--bulk-jobs", min=1, max=32, help="Processes of the bulk import (--jobs)."),
    bulk_batch_size: int = typer.Option(
        ingest_bench.IngestBenchOptions().bulk_batch_size,
        "--bulk-batch-size",
        min=1,
        max=ingest_bench.BATCH_SIZE_MAX,
        help="Lines per chunk of the bulk import.",
    ),
    in_place: bool = typer.Option(
        False, "--in-place", help="Use the configured database, not fresh ones created beside it for each run."
    ),
    database_url: str | None = typer.Option(
        None, "--database-url", help="PostgreSQL URL (default: tally's own database, the embedded server)."
    ),
    seed: int = typer.Option(1, help="Seed of the workload (which events are resent)."),
) -> None:
    """Event ingestion over HTTP (and the bulk import path), next to PostgreSQL's COPY + ON CONFLICT."""
    options = ingest_bench.IngestBenchOptions(
        events=events,
        duplicates=duplicates,
        batch_size=batch_size,
        workers=workers,
        connections=connections,
        gzip=gzip,
        bulk=bulk,
        bulk_jobs=bulk_jobs,
        bulk_batch_size=bulk_batch_size,
        in_place=in_place,
        database_url=database_url,
        seed=seed,
    )
    print(ingest_bench.run(options).to_json())


@app.command("invoice")
def invoice(
    subscriptions: int = typer.Option(100_000, min=1, max=1_000_000, help="Subscriptions (one customer each)."),
    baseline_sample: int = typer.Option(
        2_000, "--baseline-sample", min=1, max=100_000, help="Customers billed by the simplest correct run."
    ),
    check_sample: int = typer.Option(
        1_000, "--check-sample", min=1, max=100_000, help="Invoices checked against a recomputation in SQL."
    ),
    events_per_price: int = typer.Option(3, "--events-per-price", min=0, max=1_000, help="Events per meter each."),
    chunk_size: int | None = typer.Option(
        None, "--chunk-size", min=1, max=5_000, help="Customers per billing chunk (default: the billing run's, 2,000)."
    ),
    jobs: int | None = typer.Option(
        None, "--jobs", min=1, max=8, help="Worker processes billing chunks (default: one per CPU, at most 8)."
    ),
    keep: bool = typer.Option(False, "--keep", help="Keep the benchmark's database."),
    database_url: str | None = typer.Option(
        None, "--database-url", help="PostgreSQL URL (default: a fresh database on the embedded server)."
    ),
    seed: int = typer.Option(1, help="Seed of the samples and the generated usage."),
) -> None:
    """The billing run over many subscriptions (batched), next to one transaction per customer."""
    from tally.app.run_billing import CUSTOMERS_PER_CHUNK
    from tally.bench import invoice as invoice_bench

    options = invoice_bench.InvoiceBenchOptions(
        subscriptions=subscriptions,
        baseline_sample=baseline_sample,
        check_sample=check_sample,
        events_per_price=events_per_price,
        chunk_size=CUSTOMERS_PER_CHUNK if chunk_size is None else chunk_size,
        jobs=jobs,
        database_url=database_url,
        keep=keep,
        seed=seed,
    )
    print(invoice_bench.run(options).to_json())
