"""`tally bench invoice`: the billing run over many subscriptions, next to the simplest correct run.

1. load — in a fresh database: a catalog (a monthly fixed fee and three usage prices on three
   meters: a count, a sum and a count of another event type) applied as a catalog file, one
   customer subscribed through the use cases, then `subscriptions` − 1 copies of that customer and
   its subscription (rows and timeline) made by set-based SQL on the server. Subscriptions start at
   the beginning of last month (UTC), so last month's usage and this month's fee are due now; each
   gets `events_per_price` events per meter last month, written by set-based SQL into
   `ingest_batches`, `events` and `event_ids`, and the meters' rollups are built by the set-based
   backfill (the same code a new meter version uses).
2. baseline — the simplest correct billing run, on `baseline_sample` customers drawn at random:
   one database transaction per customer (its lock, its subscription and plan, one aggregation
   query over raw events per usage price, the invoice and its lines inserted into
   `bench_baseline`), computed with exact decimals. Its rate is `baseline_invoices_per_s`.
3. tally — `run_billing` over every customer (chunks of `chunk_size`, billed by `jobs` worker
   processes), timed; `peak_rss_mb` is this process's peak resident memory at the end (each worker
   holds one chunk at a time, as this process does when `jobs` is 1).
4. checks, by SQL — every subscription has exactly one invoice, each with exactly the expected
   lines, every invoice's total is the sum of its lines; for `check_sample` random customers the
   total equals a recomputation from raw events in SQL; for the baseline's customers it equals the
   baseline's answer. Any difference makes `ok` false.

By default the database is created on the embedded server and dropped afterwards (`--keep` keeps
it). The result is one JSON line (`InvoiceBenchResult.to_json`).
"""

from __future__ import annotations

import json
import os
import random
import resource
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import psycopg
from psycopg import sql

from tally.adapters.clock import SystemClock
from tally.adapters.postgres.connections import psycopg_transaction
from tally.adapters.postgres.server import embedded_server_url, with_database
from tally.app._subscription_items import PlanChoice
from tally.app.apply_catalog import apply_catalog
from tally.app.backfill_meter_rollups import backfill_pending_versions
from tally.app.catalog_files import parse_catalog_text
from tally.app.create_customer import CustomerInput, create_customer
from tally.app.create_subscription import SubscriptionInput, create_subscription
from tally.app.run_billing import BILLING_JOBS_MAX, CUSTOMERS_PER_CHUNK, default_jobs, run_billing
from tally.app.tenants import create_tenant
from tally.bootstrap import Tally, build
from tally.settings import Settings

SUBSCRIPTIONS_MAX = 1_000_000
EVENTS_PER_STATEMENT = 1_000_000
EVENTS_PER_BATCH = 10_000
TARGET_SECONDS_PER_100K = 60.0


@dataclass(frozen=True, slots=True)
class UsagePrice:
    code: str
    meter: str
    event_type: str
    aggregation: str  # count or sum
    value_property: str | None
    unit_price: Decimal
    value_max: int  # a sum's events carry 1 … value_max


FEE_CODE = "platform_fee"
FEE_AMOUNT = Decimal("49.00")
USAGE_PRICES = (
    UsagePrice("api_calls", "api_calls", "api.call", "count", None, Decimal("0.0013"), 0),
    UsagePrice("llm_tokens", "llm_tokens", "llm.call", "sum", "tokens", Decimal("0.000002"), 50_000),
    UsagePrice("images", "images", "image.generated", "count", None, Decimal("0.04"), 0),
)
# Lines per invoice: last month's fee and this month's (in advance), last month's usage per price.
LINES_PER_INVOICE = 2 + len(USAGE_PRICES)

_CATALOG = (
    f"""
meters:
  - {{code: api_calls, event_type: api.call, aggregation: count}}
  - {{code: llm_tokens, event_type: llm.call, aggregation: sum, value_property: tokens}}
  - {{code: images, event_type: image.generated, aggregation: count}}
products:
  - {{code: platform, name: Platform}}
  - {{code: usage, name: Usage}}
prices:
  - {{code: {FEE_CODE}, product: platform, model: flat_fee, currency: USD, amount: {FEE_AMOUNT}}}
"""
    + "".join(
        f"  - {{code: {price.code}, product: usage, model: per_unit, currency: USD, meter: {price.meter}, "
        f"unit_price: {price.unit_price}}}\n"
        for price in USAGE_PRICES
    )
    + f"""plans:
  - code: bench
    name: Bench
    prices: [{FEE_CODE}, {", ".join(price.code for price in USAGE_PRICES)}]
"""
)


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceBenchOptions:
    subscriptions: int = 100_000
    baseline_sample: int = 2_000
    check_sample: int = 1_000
    events_per_price: int = 3
    chunk_size: int = CUSTOMERS_PER_CHUNK
    # Worker processes of the billing run (None: `default_jobs()`, one per CPU up to a cap).
    jobs: int | None = None
    database_url: str | None = None
    keep: bool = False
    seed: int = 1

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("subscriptions", self.subscriptions, 1, SUBSCRIPTIONS_MAX),
            ("baseline_sample", self.baseline_sample, 1, 100_000),
            ("check_sample", self.check_sample, 1, 100_000),
            ("events_per_price", self.events_per_price, 0, 1_000),
            ("chunk_size", self.chunk_size, 1, 5_000),
            ("jobs", self.jobs if self.jobs is not None else 1, 1, BILLING_JOBS_MAX),
        ):
            if not low <= value <= high:
                raise ValueError(f"{name} must be {low} to {high}, not {value}")


@dataclass(frozen=True, slots=True)
class InvoiceBenchResult:
    benchmark: str
    subscriptions: int
    events: int
    load_seconds: float
    backfill_seconds: float
    invoices: int
    lines: int
    seconds: float
    invoices_per_s: float
    peak_rss_mb: float
    chunk_size: int
    jobs: int
    baseline_sample: int
    baseline_seconds: float
    baseline_invoices_per_s: float
    ratio: float
    subscriptions_without_one_invoice: int
    invoices_with_wrong_lines: int
    invoices_not_summing: int
    recomputed_checked: int
    recomputed_different: int
    baseline_different: int
    refused: int
    target_seconds: float
    ok: bool

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def run(options: InvoiceBenchOptions) -> InvoiceBenchResult:
    url, owned = _database(options)
    try:
        tally = build(Settings(database_url=url, database_pool_size=4, log_level="warning"))
        try:
            return _run(tally, options)
        finally:
            tally.close()
    finally:
        if owned is not None and not options.keep:
            with psycopg.connect(with_database(url, "postgres"), autocommit=True) as connection:
                connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(owned)))


def _database(options: InvoiceBenchOptions) -> tuple[str, str | None]:
    """The given database (left in place), or a fresh one on the embedded server (named, to drop)."""
    if options.database_url:
        return options.database_url, None
    server = embedded_server_url(Settings().data_dir)
    name = f"invoice_bench_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(server, name), name


def _month_start(moment: datetime, months_back: int = 0) -> datetime:
    year, month = moment.year, moment.month - months_back
    while month < 1:
        month += 12
        year -= 1
    return datetime(year, month, 1, tzinfo=UTC)


def _next_month(moment: datetime) -> datetime:
    return datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=UTC)


def _run(tally: Tally, options: InvoiceBenchOptions) -> InvoiceBenchResult:
    now = datetime.now(UTC)
    period_start = _month_start(now, 1)
    period_end = _next_month(period_start)
    tenant_id = create_tenant(tally.engine, f"bench-invoice-{uuid.uuid4().hex[:8]}")

    started = time.monotonic()
    _load(tally, tenant_id, options, period_start, period_end)
    load_seconds = time.monotonic() - started
    started = time.monotonic()
    backfill_pending_versions(tally.engine, SystemClock())
    with psycopg.connect(tally.database_url, autocommit=True) as connection:
        for table in ("usage_rollups", "usage_rollups_daily", "customers", "subscriptions", "subscription_timeline"):
            connection.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    backfill_seconds = time.monotonic() - started
    events = options.subscriptions * options.events_per_price * len(USAGE_PRICES)

    generator = random.Random(options.seed)
    with psycopg_transaction(tally.engine) as connection:
        customer_ids = [
            row[0]
            for row in connection.execute(
                "SELECT id FROM customers WHERE tenant_id = %s ORDER BY id", (tenant_id,)
            ).fetchall()
        ]
    sample = generator.sample(customer_ids, min(options.baseline_sample, len(customer_ids)))
    del customer_ids
    baseline_seconds = _baseline(tally, tenant_id, sample, now)

    jobs = default_jobs() if options.jobs is None else options.jobs
    started = time.monotonic()
    result = run_billing(
        tally.engine,
        SystemClock(),
        tenant_id=tenant_id,
        chunk_size=options.chunk_size,
        customers_max=options.subscriptions,
        jobs=jobs,
    )
    seconds = time.monotonic() - started
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    refused = len(result.refused)
    invoices_made = sum(1 for run in result.customers if run.created)
    del result

    checks = _check(tally, tenant_id, options, generator, period_start, period_end)
    baseline_rate = len(sample) / baseline_seconds if baseline_seconds > 0 else 0.0
    rate = invoices_made / seconds if seconds > 0 else 0.0
    target = TARGET_SECONDS_PER_100K * options.subscriptions / 100_000
    correct = (
        checks["subscriptions_without_one_invoice"] == 0
        and checks["invoices_with_wrong_lines"] == 0
        and checks["invoices_not_summing"] == 0
        and checks["recomputed_different"] == 0
        and checks["baseline_different"] == 0
        and refused == 0
        and checks["invoices"] == options.subscriptions
    )
    return InvoiceBenchResult(
        benchmark="invoice",
        subscriptions=options.subscriptions,
        events=events,
        load_seconds=round(load_seconds, 1),
        backfill_seconds=round(backfill_seconds, 1),
        invoices=checks["invoices"],
        lines=checks["lines"],
        seconds=round(seconds, 2),
        invoices_per_s=round(rate, 1),
        peak_rss_mb=round(peak_rss_mb, 1),
        chunk_size=options.chunk_size,
        jobs=jobs,
        baseline_sample=len(sample),
        baseline_seconds=round(baseline_seconds, 2),
        baseline_invoices_per_s=round(baseline_rate, 1),
        ratio=round(rate / baseline_rate, 2) if baseline_rate else 0.0,
        subscriptions_without_one_invoice=checks["subscriptions_without_one_invoice"],
        invoices_with_wrong_lines=checks["invoices_with_wrong_lines"],
        invoices_not_summing=checks["invoices_not_summing"],
        recomputed_checked=checks["recomputed_checked"],
        recomputed_different=checks["recomputed_different"],
        baseline_different=checks["baseline_different"],
        refused=refused,
        target_seconds=target,
        ok=correct and seconds <= target,
    )


# ----- load ------------------------------------------------------------------------------------------


def _load(
    tally: Tally, tenant_id: uuid.UUID, options: InvoiceBenchOptions, period_start: datetime, period_end: datetime
) -> None:
    """The catalog and one subscribed customer through the use cases; the rest by set-based SQL."""
    from tally.adapters.postgres.events import ensure_event_partitions

    clock = SystemClock()
    apply_catalog(tally.engine, clock, tenant_id, [parse_catalog_text("bench.yaml", _CATALOG)])
    template = create_customer(
        tally.engine, clock, tenant_id, CustomerInput(external_id="bench_0000000", currency="USD", timezone="UTC")
    )
    create_subscription(
        tally.engine,
        clock,
        tenant_id,
        SubscriptionInput(customer_id=template.id, plan=PlanChoice(plan_code="bench"), start_at=period_start),
    )
    ensure_event_partitions(tally.engine, period_start - timedelta(days=1), period_end + timedelta(days=1))
    copies = options.subscriptions - 1
    with psycopg.connect(tally.database_url, autocommit=True) as connection:
        connection.execute("SET synchronous_commit = off")
        connection.execute("SELECT setseed(%s)", (((options.seed * 7919) % 1000) / 1000,))
        with connection.transaction():
            connection.execute(
                """CREATE TEMP TABLE bench_copies AS
                   SELECT n, gen_random_uuid() AS customer_id, gen_random_uuid() AS subscription_id
                   FROM generate_series(1, %s) AS n""",
                (copies,),
            )
            connection.execute(
                """INSERT INTO customers (id, tenant_id, external_id, name, email, currency, billing_address, tax_ids,
                                          timezone, metadata, test_clock_id, created_at, updated_at)
                   SELECT k.customer_id, c.tenant_id, 'bench_' || lpad(k.n::text, 7, '0'), c.name || ' ' || k.n,
                          c.email, c.currency, c.billing_address, c.tax_ids, c.timezone, c.metadata, c.test_clock_id,
                          c.created_at, c.updated_at
                   FROM bench_copies k CROSS JOIN customers c WHERE c.tenant_id = %s AND c.id = %s""",
                (tenant_id, template.id),
            )
            connection.execute(
                """INSERT INTO subscriptions (id, tenant_id, customer_id, plan_version_id, metadata, created_at, status,
                                              status_as_of, started_at, ended_at, next_due_at, entries, updated_at)
                   SELECT k.subscription_id, s.tenant_id, k.customer_id, s.plan_version_id, s.metadata, s.created_at,
                          s.status, s.status_as_of, s.started_at, s.ended_at, s.next_due_at, s.entries, s.updated_at
                   FROM bench_copies k CROSS JOIN subscriptions s WHERE s.tenant_id = %s AND s.customer_id = %s""",
                (tenant_id, template.id),
            )
            connection.execute(
                """INSERT INTO subscription_timeline (tenant_id, subscription_id, sequence, kind, effective_at,
                                                      recorded_at, payload)
                   SELECT t.tenant_id, k.subscription_id, t.sequence, t.kind, t.effective_at, t.recorded_at, t.payload
                   FROM bench_copies k
                   CROSS JOIN subscriptions s JOIN subscription_timeline t ON t.subscription_id = s.id
                   WHERE s.tenant_id = %s AND s.customer_id = %s""",
                (tenant_id, template.id),
            )
        _load_events(connection, tenant_id, options, period_start, period_end)


_EVENTS = """
INSERT INTO events (tenant_id, event_id, customer, type, "timestamp", properties, received_at, batch_id)
SELECT %(tenant)s, %(prefix)s || n, 'bench_' || lpad((n / %(per_customer)s)::text, 7, '0'), %(type)s, ts,
       CASE WHEN %(value_max)s > 0 THEN jsonb_build_object('tokens', 1 + floor(random() * %(value_max)s)::int)
            ELSE '{}'::jsonb END,
       ts, %(first_batch)s + n / %(per_batch)s
FROM (SELECT n, date_trunc('milliseconds', %(start)s::timestamptz + random() * %(span)s::interval) AS ts
      FROM generate_series(%(low)s::bigint, %(high)s::bigint - 1) AS n) generated
"""


def _load_events(
    connection: psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    options: InvoiceBenchOptions,
    period_start: datetime,
    period_end: datetime,
) -> None:
    """`events_per_price` events per customer and meter inside last month, with their batches and
    dedup registry entries (as the usage benchmark writes them)."""
    per_meter = options.subscriptions * options.events_per_price
    if per_meter == 0:
        return
    total = per_meter * len(USAGE_PRICES)
    batches = -(-total // EVENTS_PER_BATCH)
    rows = connection.execute(
        """INSERT INTO ingest_batches (tenant_id, received_at, source, event_count)
           SELECT %s, now(), 'import', least(%s, %s - (n - 1) * %s) FROM generate_series(1, %s) AS n
           RETURNING batch_id""",
        (tenant_id, EVENTS_PER_BATCH, total, EVENTS_PER_BATCH, batches),
    ).fetchall()
    first_batch = min(row[0] for row in rows)
    connection.execute("DROP INDEX IF EXISTS events_customer_type_time")
    connection.execute("DROP INDEX IF EXISTS events_batch")
    for index, price in enumerate(USAGE_PRICES):
        for low in range(0, per_meter, EVENTS_PER_STATEMENT):
            connection.execute(
                _EVENTS,
                {
                    "tenant": tenant_id,
                    "prefix": f"ev{index}-",
                    "per_customer": options.events_per_price,
                    "type": price.event_type,
                    "value_max": price.value_max,
                    "first_batch": first_batch + (index * per_meter) // EVENTS_PER_BATCH,
                    "per_batch": EVENTS_PER_BATCH,
                    "start": period_start,
                    "span": period_end - period_start - timedelta(milliseconds=1),
                    "low": low,
                    "high": min(per_meter, low + EVENTS_PER_STATEMENT),
                },
            )
    connection.execute(
        """INSERT INTO event_ids (tenant_id, event_id, content_hash, "timestamp", batch_id)
           SELECT tenant_id, event_id, decode(md5(event_id), 'hex'), "timestamp", batch_id
           FROM events WHERE tenant_id = %s""",
        (tenant_id,),
    )
    # The same indexes as migration 0002, built once after the load.
    connection.execute('CREATE INDEX events_customer_type_time ON events (tenant_id, customer, type, "timestamp")')
    connection.execute("CREATE INDEX events_batch ON events (batch_id)")
    for table in ("events", "event_ids", "rollup_queue", "event_corrections"):
        connection.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))


# ----- the baseline -----------------------------------------------------------------------------------


def _baseline(tally: Tally, tenant_id: uuid.UUID, customer_ids: list[uuid.UUID], now: datetime) -> float:
    """The simplest correct run: per customer, one transaction with its lock, its subscription, one
    aggregation query over raw events per usage price, and the invoice with its lines inserted.
    Answers go to `bench_baseline.invoices` (compared with tally's afterwards)."""
    with psycopg.connect(tally.database_url, autocommit=True) as connection:
        connection.execute("CREATE SCHEMA IF NOT EXISTS bench_baseline")
        connection.execute(
            """CREATE TABLE IF NOT EXISTS bench_baseline.invoices (
                   id bigserial PRIMARY KEY, customer_id uuid NOT NULL UNIQUE, total_minor bigint NOT NULL)"""
        )
        connection.execute(
            """CREATE TABLE IF NOT EXISTS bench_baseline.lines (
                   invoice_id bigint NOT NULL REFERENCES bench_baseline.invoices (id), price text NOT NULL,
                   service_start timestamptz NOT NULL, quantity numeric, amount_minor bigint NOT NULL,
                   PRIMARY KEY (invoice_id, price, service_start))"""
        )
    started = time.monotonic()
    with psycopg.connect(tally.database_url) as connection:
        for customer_id in customer_ids:
            with connection.transaction():
                _baseline_customer(connection, tenant_id, customer_id, now)
    return time.monotonic() - started


def _cents(amount: Decimal) -> int:
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _baseline_customer(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, customer_id: uuid.UUID, now: datetime
) -> None:
    connection.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('bench_baseline:' || %s::text, 0))", (customer_id,)
    )
    row = connection.execute(
        """SELECT c.external_id, s.started_at FROM customers c JOIN subscriptions s
             ON s.tenant_id = c.tenant_id AND s.customer_id = c.id
           WHERE c.tenant_id = %s AND c.id = %s""",
        (tenant_id, customer_id),
    ).fetchone()
    if row is None:
        raise RuntimeError("a baseline customer without a subscription")
    external, started_at = row
    lines: list[tuple[str, datetime, Decimal | None, int]] = []
    period = started_at
    while period <= now:  # fees in advance: every period started by now
        lines.append((FEE_CODE, period, None, _cents(FEE_AMOUNT)))
        end = _next_month(period)
        if end <= now:  # usage in arrears: every period ended by now, one query per price
            for price in USAGE_PRICES:
                value = (
                    "count(*)::numeric"
                    if price.aggregation == "count"
                    else "coalesce(sum((properties ->> %s)::numeric), 0)"
                )
                parameters: tuple[Any, ...] = (
                    (tenant_id, external, price.event_type, period, end)
                    if price.value_property is None
                    else (price.value_property, tenant_id, external, price.event_type, period, end)
                )
                found = connection.execute(
                    f"""SELECT {value} FROM events
                        WHERE tenant_id = %s AND customer = %s AND type = %s
                          AND "timestamp" >= %s AND "timestamp" < %s""",
                    parameters,
                ).fetchone()
                quantity = Decimal(found[0]) if found else Decimal(0)
                lines.append((price.code, period, quantity, _cents(quantity * price.unit_price)))
        period = end
    invoice = connection.execute(
        "INSERT INTO bench_baseline.invoices (customer_id, total_minor) VALUES (%s, %s) RETURNING id",
        (customer_id, sum(line[3] for line in lines)),
    ).fetchone()
    if invoice is None:  # pragma: no cover - RETURNING always answers
        raise RuntimeError("no baseline invoice")
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO bench_baseline.lines VALUES (%s, %s, %s, %s, %s)",
            [(invoice[0], *line) for line in lines],
        )


# ----- checks ----------------------------------------------------------------------------------------


def _check(  # noqa: PLR0917 - a private step of the run
    tally: Tally,
    tenant_id: uuid.UUID,
    options: InvoiceBenchOptions,
    generator: random.Random,
    period_start: datetime,
    period_end: datetime,
) -> dict[str, int]:
    found: dict[str, int] = {}
    with psycopg.connect(tally.database_url, autocommit=True) as connection:

        def one(statement: str, parameters: tuple[Any, ...] | dict[str, Any]) -> int:
            row = connection.execute(statement, parameters).fetchone()
            return int(row[0]) if row and row[0] is not None else 0

        found["invoices"] = one("SELECT count(*) FROM invoices WHERE tenant_id = %s", (tenant_id,))
        found["lines"] = one("SELECT count(*) FROM invoice_lines WHERE tenant_id = %s", (tenant_id,))
        found["subscriptions_without_one_invoice"] = one(
            """SELECT count(*) FROM subscriptions s
               WHERE s.tenant_id = %s
                 AND (SELECT count(*) FROM invoices i WHERE i.tenant_id = s.tenant_id AND i.customer_id = s.customer_id)
                     <> 1""",
            (tenant_id,),
        )
        found["invoices_with_wrong_lines"] = one(
            """SELECT count(*) FROM invoices i
               WHERE i.tenant_id = %s
                 AND (SELECT count(*) FROM invoice_lines l WHERE l.invoice_id = i.id) <> %s""",
            (tenant_id, LINES_PER_INVOICE),
        )
        found["invoices_not_summing"] = one(
            """SELECT count(*) FROM invoices i
               WHERE i.tenant_id = %s
                 AND i.total_minor <> (SELECT coalesce(sum(l.amount_minor), 0) FROM invoice_lines l
                                       WHERE l.invoice_id = i.id)""",
            (tenant_id,),
        )
        # A recomputation from raw events in SQL for a random sample of customers.
        count = one("SELECT count(*) FROM customers WHERE tenant_id = %s", (tenant_id,))
        picks = sorted(generator.sample(range(count), min(options.check_sample, count)))
        externals = [f"bench_{n:07d}" for n in picks]
        usage_sql = " + ".join(
            f"""round((SELECT {
                "count(*)::numeric"
                if price.aggregation == "count"
                else f"coalesce(sum((e.properties ->> '{price.value_property}')::numeric), 0)"
            }
                       FROM events e WHERE e.tenant_id = c.tenant_id AND e.customer = c.external_id
                         AND e.type = '{price.event_type}' AND e."timestamp" >= %(start)s
                         AND e."timestamp" < %(end)s) * {price.unit_price} * 100)"""
            for price in USAGE_PRICES
        )
        fee_periods = 2  # last month's and this month's, in advance
        found["recomputed_checked"] = len(externals)
        found["recomputed_different"] = one(
            f"""SELECT count(*) FROM customers c
                JOIN invoices i ON i.tenant_id = c.tenant_id AND i.customer_id = c.id
                WHERE c.tenant_id = %(tenant)s AND c.external_id = ANY(%(externals)s)
                  AND i.total_minor <> %(fees)s + {usage_sql}""",
            {
                "tenant": tenant_id,
                "externals": externals,
                "start": period_start,
                "end": period_end,
                "fees": fee_periods * _cents(FEE_AMOUNT),
            },
        ) + (
            len(externals)
            - one(
                "SELECT count(*) FROM customers c JOIN invoices i ON i.customer_id = c.id "
                "WHERE c.tenant_id = %s AND c.external_id = ANY(%s)",
                (tenant_id, externals),
            )
        )
        found["baseline_different"] = one(
            """SELECT count(*) FROM bench_baseline.invoices b
               LEFT JOIN invoices i ON i.tenant_id = %s AND i.customer_id = b.customer_id
               WHERE i.id IS NULL OR i.total_minor <> b.total_minor""",
            (tenant_id,),
        )
    return found
