"""Ingest survives `kill -9`: one million events, a tenth of them resent, while the API server is
killed with SIGKILL several times and restarted; clients retry whatever was not acknowledged.

Afterwards the tenant holds exactly the distinct ids sent, each once; no id was ever answered
`accepted` twice; and usage — summed from the stored events by SQL, and through `GET /v1/usage` for a
sum meter — equals the sum over the distinct events the clients generated.

The server is a real `tally serve` child process on the test database; the clients are threads of
this process using `tally.client.Client` (retries with backoff, the same ids every time), each
looping until its batch is answered. The killer watches the acknowledged share and strikes at
random moments around set fractions of the run, then restarts the server.
"""

from __future__ import annotations

import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest

from tally.app.api_keys import create_api_key
from tally.app.create_meter import MeterInput, create_meter
from tally.bench.ingest import Workload
from tally.bench.server_process import ServerProcess
from tally.bootstrap import Tally
from tally.client import Client, ServerUnavailableError
from tally.core.metering.meters import MeterDefinitionInput

EVENTS_DISTINCT = 1_000_000
RESENT_FRACTION = 0.1
BATCH_SIZE = 5_000
CLIENTS = 4
KILLS = 3
CUSTOMERS = 20
SERVER_WORKERS = 2
# Generous: on a machine loaded by a parallel test run everything is several times slower.
RUN_TIMEOUT_S = 420.0
READY_TIMEOUT_S = 120.0


@dataclass
class Acknowledged:
    """Per client thread: the ids answered `accepted`, the answers by result, the retried batches."""

    accepted_ids: list[str] = field(default_factory=list)
    results: Counter[str] = field(default_factory=Counter)
    retried_batches: int = 0


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(database_url, tmp_path / "server.log", workers=SERVER_WORKERS)
    yield process
    process.stop()


@pytest.mark.slow
@pytest.mark.solo
@pytest.mark.timeout(600)
def test_a_million_events_survive_kill_9_exactly_once(
    tally: Tally, tenant_id: uuid.UUID, server: ServerProcess, database_url: str
) -> None:
    started = time.monotonic()
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    events_sent = round(EVENTS_DISTINCT / (1 - RESENT_FRACTION))
    workload = Workload(
        events_sent,
        RESENT_FRACTION,
        seed=seed,
        prefix=f"crash-{uuid.uuid4().hex[:6]}-",
        start=datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1),
        customers=CUSTOMERS,
    )
    assert workload.distinct == EVENTS_DISTINCT
    # Encoded before the server starts: the run measures the server, not the test's JSON.
    batches = [
        ([workload.event_id(index) for index in batch], [workload.event_json(index) for index in batch])
        for batch in workload.batches(BATCH_SIZE)
    ]
    _, api_key = create_api_key(tally.engine, tenant_id, "crash", ["admin"])
    create_meter(
        tally.engine,
        tally.clock,
        tenant_id,
        MeterInput(
            code="tokens",
            definition=MeterDefinitionInput(event_type="api_request", aggregation="sum", value_property="tokens"),
        ),
    )
    prepared_s = time.monotonic() - started

    server.start()
    server.wait_ready(READY_TIMEOUT_S)
    next_batch = iter(range(len(batches)))
    lock = threading.Lock()
    answered_batches = 0
    failures: list[BaseException] = []
    acknowledged = [Acknowledged() for _ in range(CLIENTS)]
    deadline = time.monotonic() + RUN_TIMEOUT_S

    def client(mine: Acknowledged) -> None:
        nonlocal answered_batches
        with Client(
            server.base_url, api_key, gzip=False, timeout_s=120, max_retries=20, backoff_base_s=0.05, backoff_cap_s=1
        ) as http:
            while not failures:
                with lock:
                    number = next(next_batch, None)
                if number is None:
                    return
                ids, events_json = batches[number]
                while True:  # until acknowledged: a kill can take any number of attempts
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"batch {number} not acknowledged in time")
                    try:
                        response = http.ingest_encoded(ids, events_json)
                        break
                    except ServerUnavailableError:
                        mine.retried_batches += 1
                if response.attempts > 1:
                    mine.retried_batches += 1
                for result in response.results:
                    mine.results[result.status] += 1
                    if result.status == "accepted":
                        mine.accepted_ids.append(ids[result.index])
                with lock:
                    answered_batches += 1

    def guarded(mine: Acknowledged) -> None:
        try:
            client(mine)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=guarded, args=(mine,), daemon=True) for mine in acknowledged]
    for thread in threads:
        thread.start()

    # The killer: near 20%, 45% and 70% of the batches answered, at a random moment.
    kills_at = [fraction + rng.uniform(-0.08, 0.08) for fraction in (0.2, 0.45, 0.7)][:KILLS]
    downtime_s = 0.0
    for fraction in kills_at:
        while answered_batches < fraction * len(batches) and not failures:
            if time.monotonic() > deadline:
                pytest.fail(f"stuck at {answered_batches}/{len(batches)} batches\n{server.output()}")
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.5))
        server.kill()
        killed_at = time.monotonic()
        server.start()
        server.wait_ready(READY_TIMEOUT_S)
        downtime_s += time.monotonic() - killed_at
    for thread in threads:
        thread.join(max(1.0, deadline - time.monotonic()))
    if failures:
        raise AssertionError(f"a client failed (seed {seed})\n{server.output()}") from failures[0]
    assert not any(thread.is_alive() for thread in threads), f"clients still running\n{server.output()}"
    assert answered_batches == len(batches)
    assert server.starts == KILLS + 1
    sent_s = time.monotonic() - started - prepared_s

    # What the clients were told.
    results = sum((mine.results for mine in acknowledged), Counter())
    assert set(results) <= {"accepted", "duplicate"}, f"refused events: {results} (seed {seed})"
    assert results.total() == events_sent
    accepted_ids = [event_id for mine in acknowledged for event_id in mine.accepted_ids]
    assert len(accepted_ids) == len(set(accepted_ids)), "an id was answered accepted twice: stored twice?"
    assert sum(mine.retried_batches for mine in acknowledged) >= KILLS, "the kills should have hit requests"

    # What the database holds: every distinct id, once, and nothing else. The ids are the prefix and a
    # nine-digit number: N distinct ids all numbered below N are exactly the N ids sent.
    verify_started = time.monotonic()
    expected_tokens: Counter[str] = Counter()
    for index in range(workload.distinct):
        expected_tokens[workload.customer(index)] += workload.tokens(index)
    pattern = "^" + re.escape(workload.prefix) + "[0-9]{9}$"
    with psycopg.connect(database_url) as connection:
        rows, distinct, foreign = connection.execute(
            """SELECT count(*), count(DISTINCT event_id),
                      count(*) FILTER (WHERE event_id !~ %s OR right(event_id, 9)::bigint >= %s)
               FROM events WHERE tenant_id = %s""",
            (pattern, workload.distinct, tenant_id),
        ).fetchone()
        [registered] = connection.execute(
            "SELECT count(*) FROM event_ids WHERE tenant_id = %s", (tenant_id,)
        ).fetchone()
        tokens_by_customer = dict(
            connection.execute(
                """SELECT customer, sum((properties->>'tokens')::numeric) FROM events
                   WHERE tenant_id = %s GROUP BY customer""",
                (tenant_id,),
            ).fetchall()
        )
    assert (rows, distinct, foreign, registered) == (EVENTS_DISTINCT, EVENTS_DISTINCT, 0, EVENTS_DISTINCT)
    assert tokens_by_customer == {customer: Decimal(total) for customer, total in expected_tokens.items()}

    sql_s = time.monotonic() - verify_started

    # And the usage API agrees with the recomputation (no rollups ran: it sums the raw tail).
    window = {"from": workload.start.isoformat(), "to": (workload.start + timedelta(hours=2)).isoformat()}

    headers = {"Authorization": f"Bearer {api_key}"}

    def usage(customer: str) -> Decimal:
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=120) as http:
            answer = http.get("/v1/usage", params={"customer": customer, "meter": "tokens", **window})
        assert answer.status_code == 200, answer.text
        [bucket] = answer.json()["data"]
        return Decimal(bucket["value"])

    with ThreadPoolExecutor(max_workers=SERVER_WORKERS * 2) as pool:
        usage_by_customer = dict(zip(expected_tokens, pool.map(usage, expected_tokens), strict=True))
    assert usage_by_customer == {customer: Decimal(total) for customer, total in expected_tokens.items()}
    verified_s = time.monotonic() - verify_started

    print(
        f"crash test: {events_sent:,} events sent ({EVENTS_DISTINCT:,} distinct) in {sent_s:.1f}s with {KILLS} kills "
        f"({downtime_s:.1f}s down), prepared in {prepared_s:.1f}s, verified in {verified_s:.1f}s ({sql_s:.1f}s SQL), "
        f"total {time.monotonic() - started:.1f}s; "
        f"answers {dict(results)}; retried batches {sum(mine.retried_batches for mine in acknowledged)}; seed {seed}"
    )
