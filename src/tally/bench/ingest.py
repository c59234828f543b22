"""`tally bench ingest`: event ingestion through the real HTTP server, next to a raw-SQL baseline.

One workload — `events` events of which a fraction `duplicates` are resends of earlier events (same
id, same content) — runs three ways against one database, each for a fresh tenant:

1. http — `tally serve --workers N` as a child process; a separate sender process posts the
   pre-encoded request bodies (JSON arrays of `batch_size` events, encoded before the clock starts so
   client-side encoding is not measured) over `connections` keep-alive connections. Per-batch latency
   is the time from sending a request to its answer (committed).
2. baseline — what PostgreSQL alone does with the same rows: per batch, a binary `COPY` into a
   staging table, then `INSERT … SELECT … ON CONFLICT DO NOTHING` into a plain table indexed like
   tally's events (the dedup key plus the same two indexes), over N connections. The COPY payloads
   are built before the clock starts: the baseline is the database's speed, not Python's. It is
   measured twice, before the HTTP run and after the last run, and the ratios divide by the mean
   of the two (both are printed): on a shared machine a single short run swings with the load
   around it.
3. bulk — the library/CLI path (`tally events import`): an NDJSON file read, parsed and ingested in
   chunks by `import_event_file` (worker processes), straight into the database. Its chunks are the
   import's own default size (`bulk_batch_size`; the baseline's speed does not depend on its batch
   size: 121,000–126,000 events/s at 10,000 rows a batch against 121,000–124,000 at 5,000).

The http and bulk runs each get a fresh database beside the configured one (migrated, with the
event partitions of the month; dropped afterwards), so every run starts from empty tables as the
baseline does — growing indexes would otherwise make each run slower than the last. `in_place`
uses the configured database instead (for a server where the bench may not create databases).

Then SQL proves each run: the tenant holds exactly the distinct ids sent, each once
(`duplicates_counted` and `lost` must be 0).

The result is one JSON line (`IngestBenchResult.to_json`).
"""

from __future__ import annotations

import gzip as gzip_module
import http.client
import json
import multiprocessing
import random
import struct
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tally.adapters.clock import SystemClock
from tally.adapters.event_files import EventFile
from tally.adapters.postgres import database
from tally.adapters.postgres.server import with_database
from tally.app.api_keys import create_api_key
from tally.app.import_events import JOBS_MAX, ImportOptions, import_event_file
from tally.app.maintain_event_partitions import maintain_event_partitions
from tally.app.tenants import create_tenant
from tally.bench.server_process import ServerProcess
from tally.bench.stats import percentile
from tally.bootstrap import Tally, build
from tally.settings import Settings

EVENTS_MAX = 20_000_000
BATCH_SIZE_MAX = 10_000
WORKERS_MAX = 8
CONNECTIONS_MAX = 32
CUSTOMERS = 1_000
EVENT_TYPE = "api_request"
WARMUP_BATCHES = 4
SENDER_TIMEOUT_S = 3_600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestBenchOptions:
    events: int = 2_000_000
    duplicates: float = 0.1
    batch_size: int = 5_000
    workers: int = 2
    connections: int = 4
    gzip: bool = False
    bulk: bool = True
    bulk_jobs: int = 2
    # Lines per chunk of the bulk import: its own default (the HTTP batch size is a client's choice).
    bulk_batch_size: int = ImportOptions().batch_size
    in_place: bool = False
    database_url: str | None = None
    seed: int = 1

    def __post_init__(self) -> None:
        limits = (
            ("events", self.events, 1, EVENTS_MAX),
            ("batch_size", self.batch_size, 1, BATCH_SIZE_MAX),
            ("workers", self.workers, 1, WORKERS_MAX),
            ("connections", self.connections, 1, CONNECTIONS_MAX),
            ("bulk_jobs", self.bulk_jobs, 1, JOBS_MAX),
            ("bulk_batch_size", self.bulk_batch_size, 1, BATCH_SIZE_MAX),
        )
        for name, value, low, high in limits:
            if not low <= value <= high:
                raise ValueError(f"{name} must be {low} to {high}, not {value}")
        if not 0 <= self.duplicates < 1:
            raise ValueError(f"duplicates must be a fraction in [0, 1), not {self.duplicates}")


@dataclass(frozen=True, slots=True)
class IngestBenchResult:
    options: IngestBenchOptions
    distinct: int
    events_per_s: float
    # Each measurement of the baseline: one before the HTTP run, one after the last run. The ratios
    # divide by their mean: on a shared machine one short baseline run swings with its neighbours.
    baseline_runs_per_s: tuple[float, ...]
    p50_ms: float
    p99_ms: float
    bulk_events_per_s: float | None
    duplicates_counted: int
    lost: int
    answered: dict[str, int]
    resent_requests: int

    @property
    def baseline_per_s(self) -> float:
        return sum(self.baseline_runs_per_s) / len(self.baseline_runs_per_s)

    def to_json(self) -> str:
        return json.dumps(
            {
                "bench": "ingest",
                "events": self.options.events,
                "distinct": self.distinct,
                "duplicates_sent": self.options.events - self.distinct,
                "batch_size": self.options.batch_size,
                "workers": self.options.workers,
                "connections": self.options.connections,
                "gzip": self.options.gzip,
                "events_per_s": round(self.events_per_s, 1),
                "baseline_per_s": round(self.baseline_per_s, 1),
                "baseline_runs_per_s": [round(rate, 1) for rate in self.baseline_runs_per_s],
                "ratio": round(self.events_per_s / self.baseline_per_s, 3),
                "p50_ms": round(self.p50_ms, 2),
                "p99_ms": round(self.p99_ms, 2),
                "bulk_jobs": self.options.bulk_jobs,
                "bulk_batch_size": self.options.bulk_batch_size,
                "bulk_events_per_s": None if self.bulk_events_per_s is None else round(self.bulk_events_per_s, 1),
                "bulk_ratio": None
                if self.bulk_events_per_s is None
                else round(self.bulk_events_per_s / self.baseline_per_s, 3),
                "duplicates_counted": self.duplicates_counted,
                "lost": self.lost,
                "answered": self.answered,
                "resent_requests": self.resent_requests,
            },
            separators=(",", ":"),
        )


class Workload:
    """The events, made from their number alone (so every process can make them without sharing
    memory), and the order they are sent in: each distinct event once, plus resends of earlier ones."""

    def __init__(
        self,
        events: int,
        duplicates: float,
        *,
        seed: int,
        prefix: str,
        start: datetime,
        customers: int = CUSTOMERS,
    ) -> None:
        # What another process needs to make the very same workload.
        self.arguments: dict[str, Any] = {
            "events": events,
            "duplicates": duplicates,
            "seed": seed,
            "prefix": prefix,
            "start": start,
            "customers": customers,
        }
        self.prefix = prefix
        self.customers = customers
        self._second_texts: dict[int, str] = {}
        self.duplicate_count = round(events * duplicates)
        self.distinct = events - self.duplicate_count
        self.start = start
        rng = random.Random(seed)
        # A resend comes after its original, anywhere later in the stream.
        resends = sorted(
            (rng.randint(index + 1, self.distinct), index)
            for index in rng.choices(range(self.distinct), k=self.duplicate_count)
        )
        order: list[int] = []
        next_resend = 0
        for position in range(self.distinct + 1):
            while next_resend < len(resends) and resends[next_resend][0] == position:
                order.append(resends[next_resend][1])
                next_resend += 1
            if position < self.distinct:
                order.append(position)
        self.order = order

    @classmethod
    def for_run(cls, options: IngestBenchOptions, prefix: str) -> Workload:
        # Event time: the last hour, so every event is inside the ingest horizon.
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        return cls(options.events, options.duplicates, seed=options.seed, prefix=prefix, start=start)

    def event_id(self, index: int) -> str:
        return f"{self.prefix}{index:09d}"

    def customer(self, index: int) -> str:
        return f"cust_{index % self.customers:04d}"

    def tokens(self, index: int) -> int:
        return (index * 7_919) % 1_000 + 1

    def offset_us(self, index: int) -> int:
        """Event time after `start`: one event a millisecond, wrapping around within the hour."""
        return index * 1_000 % 3_600_000_000

    def timestamp_text(self, index: int) -> str:
        seconds, micros = divmod(self.offset_us(index), 1_000_000)
        prefix = self._second_texts.get(seconds)
        if prefix is None:
            prefix = (self.start + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
            self._second_texts[seconds] = prefix
        return f"{prefix}.{micros:06d}Z"

    def properties_json(self, index: int) -> str:
        return f'{{"tokens":{self.tokens(index)},"model":"m{index % 3}","cost":0.000{index % 1000:03d}}}'

    def event_json(self, index: int) -> str:
        return (
            f'{{"id":"{self.event_id(index)}","customer":"{self.customer(index)}","type":"{EVENT_TYPE}",'
            f'"timestamp":"{self.timestamp_text(index)}","properties":{self.properties_json(index)}}}'
        )

    def batches(self, batch_size: int) -> Iterator[list[int]]:
        for start in range(0, len(self.order), batch_size):
            yield self.order[start : start + batch_size]


def run(options: IngestBenchOptions) -> IngestBenchResult:
    settings = Settings(database_url=options.database_url) if options.database_url else Settings()
    home_url = database.resolve_database_url(settings.database_url, settings.data_dir, settings.database_name)
    run_tag = uuid.uuid4().hex[:8]
    workload = Workload.for_run(options, prefix=f"e{run_tag}-")

    baseline_runs = [_Baseline(home_url, options).run(workload)]

    with _database_for(home_url, options, f"http_{run_tag}") as url:
        tally = build(settings.model_copy(update={"database_url": url}))
        try:
            sent, duplicates_counted, lost = _over_http(tally, options, workload, run_tag)
        finally:
            tally.close()

    bulk_per_s = None
    if options.bulk:
        with _database_for(home_url, options, f"bulk_{run_tag}") as url:
            tally = build(settings.model_copy(update={"database_url": url}))
            try:
                bulk_per_s = _bulk(tally, options, run_tag)
            finally:
                tally.close()

    baseline_runs.append(_Baseline(home_url, options).run(workload))

    latencies = sent.latencies_ns
    return IngestBenchResult(
        options=options,
        distinct=workload.distinct,
        events_per_s=options.events / sent.seconds,
        baseline_runs_per_s=tuple(baseline_runs),
        p50_ms=percentile(latencies, 50) / 1e6,
        p99_ms=percentile(latencies, 99) / 1e6,
        bulk_events_per_s=bulk_per_s,
        duplicates_counted=duplicates_counted,
        lost=lost,
        answered=sent.answered,
        resent_requests=sent.resent,
    )


@contextmanager
def _database_for(home_url: str, options: IngestBenchOptions, name: str) -> Iterator[str]:
    """A fresh database beside `home_url` (migrated, with this month's event partitions), dropped
    afterwards: each run starts from empty tables, as the baseline does, however many ran before.
    With `in_place`, the configured database itself."""
    if options.in_place:
        yield home_url
        return
    url = with_database(home_url, f"tally_bench_ingest_{name}")
    with psycopg.connect(home_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(f"tally_bench_ingest_{name}")))
    try:
        database.upgrade(url)
        engine = database.make_engine(url, pool_size=1)
        try:
            maintain_event_partitions(engine, SystemClock(), Settings(database_url=url))
        finally:
            engine.dispose()
        yield url
    finally:
        with psycopg.connect(home_url, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(f"tally_bench_ingest_{name}"))
            )


def _over_http(tally: Tally, options: IngestBenchOptions, workload: Workload, run_tag: str) -> tuple[_Sent, int, int]:
    tenant_id = create_tenant(tally.engine, f"bench-ingest-{run_tag}")
    _, secret = create_api_key(tally.engine, tenant_id, "bench", ["ingest"])
    with tempfile.TemporaryDirectory(prefix="tally-bench-ingest-") as directory:
        server = ServerProcess(tally.database_url, Path(directory) / "server.log", workers=options.workers)
        server.start()
        try:
            server.wait_ready()
            sent = _send_over_http(server.base_url, secret, options, workload)
        except Exception as error:
            raise RuntimeError(f"the HTTP run failed; the server's log ends:\n{server.output()}") from error
        finally:
            server.stop()
    duplicates_counted, lost = _verify(tally, tenant_id, workload.distinct + sent.warmup_events)
    return sent, duplicates_counted, lost


def _verify(tally: Tally, tenant_id: uuid.UUID, distinct: int) -> tuple[int, int]:
    """(rows beyond one per id, ids sent but not stored) for the tenant, by SQL."""
    with psycopg.connect(tally.database_url) as connection:
        row = connection.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM events WHERE tenant_id = %s", (tenant_id,)
        ).fetchone()
        registered = connection.execute("SELECT count(*) FROM event_ids WHERE tenant_id = %s", (tenant_id,)).fetchone()
    rows, ids = (int(row[0]), int(row[1])) if row else (0, 0)
    if registered is None or int(registered[0]) != ids:
        raise RuntimeError(f"the dedup registry holds {registered} ids, the events table {ids}")
    return rows - ids, distinct - ids


# 1. Over HTTP, from a separate process.


@dataclass(frozen=True, slots=True)
class _Sent:
    seconds: float
    latencies_ns: list[int]
    answered: dict[str, int]
    warmup_events: int
    resent: int


def _send_over_http(base_url: str, api_key: str, options: IngestBenchOptions, workload: Workload) -> _Sent:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    sender = context.Process(
        target=_sender_main, args=(child, base_url, api_key, options, workload.arguments), daemon=True
    )
    sender.start()
    try:
        if not parent.poll(SENDER_TIMEOUT_S):
            raise TimeoutError("the sender did not get ready")
        message = parent.recv()
        if message[0] != "ready":
            raise RuntimeError(f"the sender failed: {message[1]}")
        parent.send("go")
        if not parent.poll(SENDER_TIMEOUT_S):
            raise TimeoutError("the sender did not finish")
        message = parent.recv()
        if message[0] != "done":
            raise RuntimeError(f"the sender failed: {message[1]}")
        _, seconds, latencies_ns, answered, warmup_events, resent = message
        return _Sent(seconds, latencies_ns, answered, warmup_events, resent)
    finally:
        sender.join(30)
        if sender.is_alive():
            sender.kill()


def _sender_main(
    pipe: Connection,
    base_url: str,
    api_key: str,
    options: IngestBenchOptions,
    workload_arguments: dict[str, Any],
) -> None:
    """In the sender process: encode every body, say ready, wait for go, send, report."""
    try:
        workload = Workload(**workload_arguments)
        bodies = [
            _body([workload.event_json(index) for index in batch], options.gzip)
            for batch in workload.batches(options.batch_size)
        ]
        warmup = [
            _body([_warmup_json(batch, index) for index in range(min(options.batch_size, 1_000))], options.gzip)
            for batch in range(WARMUP_BATCHES)
        ]
        host, port = base_url.removeprefix("http://").split(":")
        headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        if options.gzip:
            headers["Content-Encoding"] = "gzip"
        answered: Counter[str] = Counter()
        _post_all(
            host, int(port), headers, warmup, connections=min(options.connections, len(warmup)), answered=Counter()
        )
        pipe.send(("ready",))
        pipe.recv()
        started = time.perf_counter()
        posted = _post_all(host, int(port), headers, bodies, connections=options.connections, answered=answered)
        seconds = time.perf_counter() - started
        warmup_events = WARMUP_BATCHES * min(options.batch_size, 1_000)
        pipe.send(("done", seconds, posted.latencies_ns, dict(answered), warmup_events, posted.resent))
    except BaseException as error:
        pipe.send(("failed", repr(error)))
        raise


def _warmup_json(batch: int, index: int) -> str:
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f'{{"id":"warmup-{batch}-{index}","customer":"warmup","type":"{EVENT_TYPE}","timestamp":"{at}",'
        f'"properties":{{"tokens":1}}}}'
    )


def _body(events_json: Sequence[str], compress: bool) -> bytes:
    body = ("[" + ",".join(events_json) + "]").encode()
    return gzip_module.compress(body, compresslevel=1) if compress else body


RESENDS_MAX = 5


@dataclass(slots=True)
class _Posted:
    latencies_ns: list[int]
    resent: int


def _post_all(
    host: str, port: int, headers: dict[str, str], bodies: Sequence[bytes], *, connections: int, answered: Counter[str]
) -> _Posted:
    """Post every body over `connections` keep-alive connections; per-request latencies in ns.

    A connection the server closes without an answer is opened again and the same body resent (safe:
    the ids dedup), at most `RESENDS_MAX` times per body; `resent` counts those."""
    next_body = iter(range(len(bodies)))
    lock = threading.Lock()
    posted = _Posted([], 0)
    failures: list[BaseException] = []

    def post_one(connection: http.client.HTTPConnection, body: bytes) -> bytes:
        connection.request("POST", "/v1/events", body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {payload[:500]!r}")
        return payload

    def post() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=600)
        try:
            while True:
                with lock:
                    number = next(next_body, None)
                if number is None or failures:
                    return
                started = time.perf_counter_ns()
                for attempt in range(RESENDS_MAX + 1):
                    try:
                        payload = post_one(connection, bodies[number])
                        break
                    except (http.client.RemoteDisconnected, ConnectionError):
                        if attempt == RESENDS_MAX:
                            raise
                        connection.close()
                        connection = http.client.HTTPConnection(host, port, timeout=600)
                        with lock:
                            posted.resent += 1
                elapsed = time.perf_counter_ns() - started
                counts = Counter(item["result"] for item in json.loads(payload)["results"])
                with lock:
                    posted.latencies_ns.append(elapsed)
                    answered.update(counts)
        except BaseException as error:
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return posted


# 2. The baseline: PostgreSQL alone.


_POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class _Baseline:
    """PostgreSQL alone: binary COPY into a staging table, then INSERT … ON CONFLICT DO NOTHING into a
    plain table with the dedup key and tally's two event indexes. A table of its own per run, dropped
    afterwards."""

    def __init__(self, url: str, options: IngestBenchOptions) -> None:
        self.url = url
        self.options = options
        self.tenant_id = uuid.uuid4()
        self.table = f"bench_ingest_baseline_{uuid.uuid4().hex[:12]}"

    def run(self, workload: Workload) -> float:
        payloads = [self._copy_payload(workload, batch) for batch in workload.batches(self.options.batch_size)]
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(
                f"""
                CREATE TABLE {self.table} (
                    tenant_id    uuid NOT NULL,
                    event_id     text NOT NULL,
                    customer     text NOT NULL,
                    type         text NOT NULL,
                    "timestamp"  timestamptz NOT NULL,
                    properties   jsonb NOT NULL,
                    received_at  timestamptz NOT NULL,
                    batch_id     bigint NOT NULL,
                    PRIMARY KEY (tenant_id, event_id)
                );
                CREATE INDEX ON {self.table} (tenant_id, customer, type, "timestamp");
                CREATE INDEX ON {self.table} (batch_id);
                """
            )
        try:
            seconds = self._load(payloads)
            with psycopg.connect(self.url) as connection:
                row = connection.execute(f"SELECT count(*) FROM {self.table}").fetchone()
        finally:
            with psycopg.connect(self.url, autocommit=True) as connection:
                connection.execute(f"DROP TABLE IF EXISTS {self.table}")
        if row is None or int(row[0]) != workload.distinct:
            raise RuntimeError(f"the baseline stored {row} events, not {workload.distinct}")
        return self.options.events / seconds

    def _copy_payload(self, workload: Workload, batch: Sequence[int]) -> bytes:
        """PostgreSQL's binary COPY format, built here so the timed part is the database's work only."""
        pack_text = struct.Struct("!i").pack
        parts = [b"PGCOPY\n\xff\r\n\x00", struct.pack("!ii", 0, 0)]
        start_us = (workload.start - _POSTGRES_EPOCH) // timedelta(microseconds=1)
        for index in batch:
            micros = start_us + workload.offset_us(index)
            fields = [workload.event_id(index).encode(), workload.customer(index).encode(), EVENT_TYPE.encode()]
            parts.append(struct.pack("!h", 5))
            for value in fields:
                parts += (pack_text(len(value)), value)
            parts.append(struct.pack("!iq", 8, micros))
            properties = b"\x01" + workload.properties_json(index).encode()
            parts += (pack_text(len(properties)), properties)
        parts.append(struct.pack("!h", -1))
        return b"".join(parts)

    def _load(self, payloads: Sequence[bytes]) -> float:
        next_payload = enumerate(payloads, start=1)
        lock = threading.Lock()
        failures: list[BaseException] = []
        connections = [psycopg.connect(self.url) for _ in range(self.options.workers)]
        # Rows in id order, so concurrent batches sharing ids lock them in one order (no deadlocks).
        insert = f"""
            INSERT INTO {self.table}
                (tenant_id, event_id, customer, type, "timestamp", properties, received_at, batch_id)
            SELECT %s, event_id, customer, type, "timestamp", properties, now(), %s
            FROM staging ORDER BY event_id
            ON CONFLICT (tenant_id, event_id) DO NOTHING
        """
        try:
            for connection in connections:
                connection.execute(
                    """CREATE TEMP TABLE staging (
                           event_id text, customer text, type text, "timestamp" timestamptz, properties jsonb
                       ) ON COMMIT DELETE ROWS"""
                )
                connection.commit()
            barrier = threading.Barrier(len(connections) + 1)

            def load(connection: psycopg.Connection[Any]) -> None:
                try:
                    barrier.wait()
                    while True:
                        with lock:
                            batch_id, payload = next(next_payload, (0, None))
                        if payload is None:
                            return
                        with connection.transaction():
                            with connection.cursor().copy("COPY staging FROM STDIN (FORMAT BINARY)") as copy:
                                copy.write(payload)
                            connection.execute(insert, (self.tenant_id, batch_id))
                except BaseException as error:
                    failures.append(error)

            threads = [threading.Thread(target=load, args=(connection,), daemon=True) for connection in connections]
            for thread in threads:
                thread.start()
            barrier.wait()
            started = time.perf_counter()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - started
        finally:
            for connection in connections:
                connection.close()
        if failures:
            raise failures[0]
        return seconds


# 3. The bulk path: the library / `tally events import`.


def _bulk(tally: Tally, options: IngestBenchOptions, run_tag: str) -> float:
    workload = Workload.for_run(options, prefix=f"b{run_tag}-")
    tenant_id = create_tenant(tally.engine, f"bench-bulk-{run_tag}")
    with tempfile.TemporaryDirectory(prefix="tally-bench-bulk-") as directory:
        path = Path(directory) / "events.ndjson"
        with path.open("w") as file:
            for index in workload.order:
                file.write(workload.event_json(index) + "\n")
        started = time.perf_counter()
        with EventFile(path) as source:
            summary = import_event_file(
                tally.engine,
                tally.clock,
                tenant_id,
                source,
                ImportOptions(batch_size=options.bulk_batch_size, jobs=options.bulk_jobs),
            )
        seconds = time.perf_counter() - started
    if summary.accepted != workload.distinct or summary.duplicates != workload.duplicate_count:
        raise RuntimeError(f"the bulk import answered {summary}, not {workload.distinct} accepted")
    duplicates_counted, lost = _verify(tally, tenant_id, workload.distinct)
    if duplicates_counted or lost:
        raise RuntimeError(f"the bulk import counted {duplicates_counted} twice and lost {lost}")
    return options.events / seconds
