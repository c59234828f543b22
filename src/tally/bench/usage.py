"""`tally bench usage`: current-period usage queries on millions of stored events, and freshness.

1. load — `events` events over `customers` customers (a heavy-tailed mix: a few customers send most
   of the events, as on a real AI platform) spread over the last 50 days, written straight into
   `ingest_batches`, `events` and `event_ids` by set-based SQL on the server (no HTTP, no Python per
   row), with the events' indexes built after the load. Two meters: `tokens` (sum of `tokens`, by
   `model`) and `calls` (count).
2. backfill — the meters' rollups built by the set-based backfill (the same code a new meter version
   uses), then ANALYZE.
3. queries — the current billing period of one customer (30 days from an anchor that is not on an
   hour, so both window edges are cut and computed from raw events), `tokens` by model, for
   customers drawn like the events are (busy customers are asked about more): p50/p99 through the
   event store (rollups + raw edges + raw tail), and the baseline, the same query computed from raw
   events only. Every answer is compared with the baseline's: any difference fails the run.
4. freshness — with the rollup worker loop running and a background load ingesting batches through
   `ingest_events`, probe events are ingested one at a time (each for a customer of its own) and
   usage is polled until the event counts: the ingest-to-visible lag (target ≤ 1 s), and how long
   until the worker has rolled its batch up.

By default everything happens in a fresh database on the embedded server, dropped at the end
(`--keep` keeps it). The result is one JSON line (`UsageBenchResult.to_json`).
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from tally.adapters.clock import SystemClock
from tally.adapters.postgres.connections import psycopg_transaction
from tally.adapters.postgres.server import embedded_server_url, with_database
from tally.adapters.postgres.usage import PostgresEventStore
from tally.app.backfill_meter_rollups import backfill_pending_versions
from tally.app.create_meter import MeterInput, create_meter
from tally.app.ingest_events import ingest_events
from tally.app.tenants import create_tenant
from tally.bench.stats import percentile
from tally.bootstrap import Tally, build
from tally.core.metering.meters import MeterDefinitionInput, MeterVersion
from tally.core.metering.usage import UsageQuery
from tally.settings import Settings

EVENTS_MAX = 100_000_000
CUSTOMERS_MAX = 1_000_000
EVENTS_PER_BATCH = 10_000
EVENTS_PER_STATEMENT = 1_000_000
HISTORY_DAYS = 50
PERIOD_DAYS = 30
EVENT_TYPE = "llm.call"
MODELS = ("gpt-4o", "o3", "claude", "llama")
# Customer k gets events with probability ∝ the gaps of u³: a heavy head and a long tail.
SKEW_EXPONENT = 3
QUERY_TARGET_MS = 10.0
LAG_TARGET_MS = 1000.0
PROBE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageBenchOptions:
    events: int = 10_000_000
    customers: int = 10_000
    queries: int = 1_000
    probes: int = 200
    load_events_per_second: int = 2_000
    database_url: str | None = None
    keep: bool = False
    seed: int = 1

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("events", self.events, 1_000, EVENTS_MAX),
            ("customers", self.customers, 1, CUSTOMERS_MAX),
            ("queries", self.queries, 10, 1_000_000),
            ("probes", self.probes, 1, 100_000),
            ("load_events_per_second", self.load_events_per_second, 0, 1_000_000),
        ):
            if not low <= value <= high:
                raise ValueError(f"{name} must be {low} to {high}, not {value}")


@dataclass(frozen=True, slots=True)
class UsageBenchResult:
    benchmark: str
    events: int
    customers: int
    rollup_rows: int
    load_seconds: float
    backfill_seconds: float
    queries: int
    query_p50_ms: float
    query_p99_ms: float
    baseline_raw_p50_ms: float
    baseline_raw_p99_ms: float
    heaviest_customer_events_in_period: int
    heaviest_query_ms: float
    heaviest_baseline_raw_ms: float
    answers_equal_baseline: bool
    probes: int
    visible_lag_p50_ms: float
    visible_lag_p99_ms: float
    ingest_call_p99_ms: float
    poll_query_p99_ms: float
    rolled_up_lag_p50_ms: float
    rolled_up_lag_p99_ms: float
    background_events_per_second: float
    query_target_ms: float
    lag_target_ms: float
    ok: bool

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def _percentile(samples: list[float], fraction: float) -> float:
    return round(percentile(samples, round(fraction * 100)), 3)


def run(options: UsageBenchOptions) -> UsageBenchResult:
    url, owned = _database(options)
    try:
        tally = build(Settings(database_url=url, database_pool_size=8, log_level="warning"))
        try:
            return _run(tally, options)
        finally:
            tally.close()
    finally:
        if owned is not None and not options.keep:
            _drop(url, owned)


def _database(options: UsageBenchOptions) -> tuple[str, str | None]:
    """The bench's database: the given one (left in place), or a fresh one on the embedded server
    (its name is returned, to drop it afterwards)."""
    if options.database_url:
        return options.database_url, None
    server = embedded_server_url(Settings().data_dir)
    name = f"usage_bench_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(server, name), name


def _drop(url: str, name: str) -> None:
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _meters(tally: Tally, tenant_id: uuid.UUID) -> tuple[MeterVersion, MeterVersion]:
    clock = SystemClock()
    tokens = create_meter(
        tally.engine,
        clock,
        tenant_id,
        MeterInput(
            code="tokens",
            definition=MeterDefinitionInput(
                event_type=EVENT_TYPE, aggregation="sum", value_property="tokens", group_by=("model",)
            ),
        ),
    )
    calls = create_meter(
        tally.engine,
        clock,
        tenant_id,
        MeterInput(code="calls", definition=MeterDefinitionInput(event_type=EVENT_TYPE, aggregation="count")),
    )
    return tokens.state.version.to_core(), calls.state.version.to_core()


def _run(tally: Tally, options: UsageBenchOptions) -> UsageBenchResult:
    generator = random.Random(options.seed)
    now = datetime.now(UTC)
    tenant_id = create_tenant(tally.engine, f"bench-usage-{uuid.uuid4().hex[:8]}")
    tokens, calls = _meters(tally, tenant_id)

    started = time.monotonic()
    _load(tally, tenant_id, options, now)
    load_seconds = time.monotonic() - started

    started = time.monotonic()
    backfill_pending_versions(tally.engine, SystemClock())
    with psycopg_transaction(tally.engine) as connection:
        connection.execute("ANALYZE usage_rollups")
        row = connection.execute("SELECT count(*) FROM usage_rollups WHERE tenant_id = %s", (tenant_id,)).fetchone()
        rollup_rows = int(row[0]) if row else 0
    backfill_seconds = time.monotonic() - started

    # The current billing period: anchored off the hour, so both edges cut an hour.
    period_start = now - timedelta(days=20, minutes=17, seconds=23)
    period_end = period_start + timedelta(days=PERIOD_DAYS)
    with psycopg_transaction(tally.engine) as connection:
        weights = connection.execute(
            """SELECT customer, count(*) FROM events WHERE tenant_id = %s AND "timestamp" >= %s AND "timestamp" < %s
               GROUP BY customer ORDER BY count(*) DESC""",
            (tenant_id, period_start, period_end),
        ).fetchall()
    customers = [row[0] for row in weights]
    store = PostgresEventStore(tally.engine)

    def query(customer: str) -> UsageQuery:
        return UsageQuery(customer=customer, meter=tokens, start=period_start, end=period_end, group_by=("model",))

    picks = generator.choices(customers, weights=[row[1] for row in weights], k=options.queries)
    for customer in picks[: min(50, len(picks))]:  # warm the caches and the connection pool
        store.usage(tenant_id, query(customer))
    fast, slow, equal = [], [], True
    for customer in picks:
        begun = time.perf_counter()
        answer = store.usage(tenant_id, query(customer))
        fast.append((time.perf_counter() - begun) * 1000)
        begun = time.perf_counter()
        baseline = store.usage(tenant_id, query(customer), raw_only=True)
        slow.append((time.perf_counter() - begun) * 1000)
        equal = equal and answer.rows == baseline.rows
    heaviest = customers[0]
    heaviest_fast, heaviest_slow = [], []
    for _ in range(5):
        begun = time.perf_counter()
        store.usage(tenant_id, query(heaviest))
        heaviest_fast.append((time.perf_counter() - begun) * 1000)
        begun = time.perf_counter()
        store.usage(tenant_id, query(heaviest), raw_only=True)
        heaviest_slow.append((time.perf_counter() - begun) * 1000)

    fresh = _freshness(
        tally, tenant_id=tenant_id, calls=calls, options=options, period_start=period_start, period_end=period_end
    )
    lags = fresh.lags_ms
    query_p99 = _percentile(fast, 0.99)
    lag_p99 = _percentile(lags, 0.99)
    return UsageBenchResult(
        benchmark="usage",
        events=options.events,
        customers=options.customers,
        rollup_rows=rollup_rows,
        load_seconds=round(load_seconds, 1),
        backfill_seconds=round(backfill_seconds, 1),
        queries=len(fast),
        query_p50_ms=_percentile(fast, 0.5),
        query_p99_ms=query_p99,
        baseline_raw_p50_ms=_percentile(slow, 0.5),
        baseline_raw_p99_ms=_percentile(slow, 0.99),
        heaviest_customer_events_in_period=int(weights[0][1]),
        heaviest_query_ms=round(min(heaviest_fast), 3),
        heaviest_baseline_raw_ms=round(min(heaviest_slow), 3),
        answers_equal_baseline=equal,
        probes=len(lags),
        visible_lag_p50_ms=_percentile(lags, 0.5),
        visible_lag_p99_ms=lag_p99,
        ingest_call_p99_ms=_percentile(fresh.ingest_ms, 0.99),
        poll_query_p99_ms=_percentile(fresh.poll_ms, 0.99),
        rolled_up_lag_p50_ms=_percentile(fresh.rolled_ms, 0.5) if fresh.rolled_ms else -1.0,
        rolled_up_lag_p99_ms=_percentile(fresh.rolled_ms, 0.99) if fresh.rolled_ms else -1.0,
        background_events_per_second=round(fresh.background_events_per_second, 1),
        query_target_ms=QUERY_TARGET_MS,
        lag_target_ms=LAG_TARGET_MS,
        ok=equal and query_p99 <= QUERY_TARGET_MS and lag_p99 <= LAG_TARGET_MS and len(lags) == options.probes,
    )


# ----- load ------------------------------------------------------------------------------------------

_EVENTS = """
INSERT INTO events (tenant_id, event_id, customer, type, "timestamp", properties, received_at, batch_id)
SELECT %(tenant)s, 'ev' || n, 'cust_' || lpad(least(floor(%(customers)s * power(random(), %(skew)s)),
                                                     %(customers)s - 1)::int::text, 7, '0'),
       %(type)s, ts,
       jsonb_build_object('tokens', 1 + floor(random() * 2000)::int, 'model', (%(models)s::text[])[1 + n %% 4]),
       ts, %(first_batch)s + n / %(per_batch)s
FROM (SELECT n, date_trunc('milliseconds', %(start)s::timestamptz + random() * %(span)s::interval) AS ts
      FROM generate_series(%(low)s::bigint, %(high)s::bigint - 1) AS n) generated
"""


def _load(tally: Tally, tenant_id: uuid.UUID, options: UsageBenchOptions, now: datetime) -> None:
    """Write the events, their batches and dedup registry entries with set-based SQL on the server."""
    from tally.adapters.postgres.events import ensure_event_partitions

    start = now - timedelta(days=HISTORY_DAYS)
    ensure_event_partitions(tally.engine, start, now + timedelta(days=PERIOD_DAYS + 1))
    batches = math.ceil(options.events / EVENTS_PER_BATCH)
    with psycopg.connect(tally.database_url, autocommit=True) as connection:
        connection.execute("SET synchronous_commit = off")
        connection.execute("SET maintenance_work_mem = '512MB'")
        connection.execute("SELECT setseed(%s)", (((options.seed * 7919) % 1000) / 1000,))
        row = connection.execute(
            """INSERT INTO ingest_batches (tenant_id, received_at, source, event_count)
               SELECT %s, now(), 'import', least(%s, %s - (n - 1) * %s) FROM generate_series(1, %s) AS n
               RETURNING batch_id""",
            (tenant_id, EVENTS_PER_BATCH, options.events, EVENTS_PER_BATCH, batches),
        ).fetchall()
        first_batch = min(item[0] for item in row)
        connection.execute("DROP INDEX IF EXISTS events_customer_type_time")
        connection.execute("DROP INDEX IF EXISTS events_batch")
        for low in range(0, options.events, EVENTS_PER_STATEMENT):
            connection.execute(
                _EVENTS,
                {
                    "tenant": tenant_id,
                    "customers": options.customers,
                    "skew": SKEW_EXPONENT,
                    "type": EVENT_TYPE,
                    "models": list(MODELS),
                    "first_batch": first_batch,
                    "per_batch": EVENTS_PER_BATCH,
                    "start": start,
                    "span": timedelta(days=HISTORY_DAYS),
                    "low": low,
                    "high": min(options.events, low + EVENTS_PER_STATEMENT),
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
        connection.execute("ANALYZE events")
        connection.execute("ANALYZE event_ids")
        connection.execute("ANALYZE rollup_queue")
        connection.execute("ANALYZE event_corrections")


# ----- freshness -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Freshness:
    lags_ms: list[float]  # ingest call to the first query that counts the event
    rolled_ms: list[float]  # ingest call to its batch leaving rollup_queue
    ingest_ms: list[float]  # the ingest call alone (commit included)
    poll_ms: list[float]  # each usage query made while polling
    background_events_per_second: float


def _freshness(
    tally: Tally,
    *,
    tenant_id: uuid.UUID,
    calls: MeterVersion,
    options: UsageBenchOptions,
    period_start: datetime,
    period_end: datetime,
) -> Freshness:
    """Ingest-to-visible lag of probe events while the rollup worker runs and a background load ingests."""
    from tally.worker.usage_loops import rollup_loop

    stop = threading.Event()
    worker = threading.Thread(target=rollup_loop, args=(tally, stop), name="bench-rollups", daemon=True)
    worker.start()
    background_sent = [0]
    background = threading.Thread(
        target=_background_load, args=(tally, tenant_id, options, stop, background_sent), daemon=True
    )
    load_started = time.monotonic()
    background.start()
    store = PostgresEventStore(tally.engine)
    lags: list[float] = []
    rolled: list[float] = []
    ingests: list[float] = []
    polls: list[float] = []
    try:
        for index in range(options.probes):
            customer = f"probe_{index:05d}"
            event = {
                "id": f"probe-{uuid.uuid4().hex}",
                "customer": customer,
                "type": EVENT_TYPE,
                "timestamp": datetime.now(UTC).isoformat(),
                "properties": {"tokens": 1, "model": MODELS[0]},
            }
            query = UsageQuery(customer=customer, meter=calls, start=period_start, end=period_end)
            begun = time.perf_counter()
            result = ingest_events(tally.engine, tally.clock, tenant_id, [event])
            ingests.append((time.perf_counter() - begun) * 1000)
            while True:
                polled = time.perf_counter()
                visible = store.usage(tenant_id, query).rows[0].value == 1
                polls.append((time.perf_counter() - polled) * 1000)
                if visible:
                    lags.append((time.perf_counter() - begun) * 1000)
                    break
                if time.perf_counter() - begun > PROBE_TIMEOUT_SECONDS:
                    break
            if result.batch_id is not None:
                while time.perf_counter() - begun < PROBE_TIMEOUT_SECONDS:
                    with psycopg_transaction(tally.engine) as connection:
                        queued = connection.execute(
                            "SELECT 1 FROM rollup_queue WHERE batch_id = %s", (result.batch_id,)
                        ).fetchone()
                    if queued is None:
                        rolled.append((time.perf_counter() - begun) * 1000)
                        break
                    time.sleep(0.005)
            time.sleep(generator_pause(index))
    finally:
        stop.set()
        background.join(timeout=30)
        worker.join(timeout=30)
    rate = background_sent[0] / max(time.monotonic() - load_started, 1e-9)
    return Freshness(lags, rolled, ingests, polls, rate)


def generator_pause(index: int) -> float:
    """A small, varying pause between probes, so they land at different points of the worker's cycle."""
    return ((index * 37) % 50) / 1000


def _background_load(
    tally: Tally, tenant_id: uuid.UUID, options: UsageBenchOptions, stop: threading.Event, sent: list[int]
) -> None:
    if options.load_events_per_second <= 0:
        return
    generator = random.Random(options.seed + 1)
    batch = 500
    interval = batch / options.load_events_per_second
    next_at = time.monotonic()
    while not stop.is_set():
        now = datetime.now(UTC)
        events: list[dict[str, Any]] = [
            {
                "id": f"bg-{uuid.uuid4().hex}",
                "customer": f"cust_{generator.randrange(options.customers):07d}",
                "type": EVENT_TYPE,
                "timestamp": (now - timedelta(seconds=generator.randrange(3600))).isoformat(),
                "properties": {"tokens": generator.randrange(1, 2000), "model": generator.choice(MODELS)},
            }
            for _ in range(batch)
        ]
        ingest_events(tally.engine, tally.clock, tenant_id, events)
        sent[0] += batch
        next_at += interval
        stop.wait(max(0.0, next_at - time.monotonic()))
