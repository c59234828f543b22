"""The Python client against a real tally app (uvicorn on a free localhost port, in a thread)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
import uvicorn

from tally.api.app import create_app
from tally.app.api_keys import create_api_key
from tally.bench.server_process import free_port
from tally.bootstrap import Tally
from tally.client import Client, Event, EventResult, Ingestor, RequestRefusedError

STARTUP_SECONDS_MAX = 30


@pytest.fixture(scope="module")
def base_url(tally: Tally) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(create_app(tally), host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS_MAX
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def api_key(tally: Tally, tenant_id: uuid.UUID) -> str:
    return create_api_key(tally.engine, tenant_id, "client-test", ["ingest"])[1]


def _stored(database_url: str, tenant_id: uuid.UUID) -> dict[str, str]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT event_id, properties::text FROM events WHERE tenant_id = %s", (tenant_id,)
        ).fetchall()
    return dict(rows)


def test_ingest_answers_per_event_and_keeps_decimals_exact(base_url, api_key, database_url, tenant_id) -> None:
    at = datetime.now(UTC) - timedelta(minutes=1)
    with Client(base_url, api_key) as client:
        response = client.ingest(
            [
                Event(id="a", customer="acme", type="tokens", timestamp=at, properties={"cost": Decimal("0.000002")}),
                Event(id="b", customer="", type="tokens", timestamp=at),
                {"id": "a", "customer": "acme", "type": "tokens", "timestamp": at, "properties": {"cost": 1}},
                {"id": "a", "customer": "acme", "type": "tokens", "timestamp": at, "properties": {"cost": "0.000002"}},
            ]
        )
        again = client.ingest(
            [Event(id="a", customer="acme", type="tokens", timestamp=at, properties={"cost": Decimal("2E-6")})]
        )
    assert [(result.status, result.code) for result in response.results] == [
        ("accepted", None),
        ("rejected", "customer_required"),
        ("conflict", "exists_with_different_content"),
        ("conflict", "exists_with_different_content"),
    ]
    assert response.results[1].field == "customer"
    assert again.results[0].status == "duplicate", "2E-6 is 0.000002: the same content"
    assert _stored(database_url, tenant_id) == {"a": '{"cost": 0.000002}'}


def test_a_bad_key_is_refused_as_a_whole(base_url) -> None:
    with Client(base_url, "tally_sk_not-a-key") as client, pytest.raises(RequestRefusedError) as raised:
        client.ingest([Event(customer="acme", type="tokens")])
    assert (raised.value.status, raised.value.code) == (401, "api_key_invalid")


def test_the_ingestor_delivers_everything_once(base_url, api_key, database_url, tenant_id) -> None:
    refused: list[EventResult] = []
    with Ingestor(
        base_url, api_key, batch_size=300, flush_interval_s=0.05, senders=2, on_refused=refused.append
    ) as ingestor:
        ids = [
            ingestor.track(customer=f"c{index % 4}", type="tokens", properties={"tokens": index})
            for index in range(1_000)
        ]
        ingestor.track(customer="c0", type="tokens", id=ids[0], properties={"tokens": -1})  # reuses an id
        assert ingestor.flush(timeout_s=30)
        ingestor.track(customer="c0", type="tokens", timestamp="yesterday")
    stats = ingestor.stats
    assert (stats.tracked, stats.accepted, stats.conflict, stats.rejected, stats.failed) == (1_002, 1_000, 1, 1, 0)
    assert sorted(result.code or "" for result in refused) == ["exists_with_different_content", "timestamp_invalid"]
    assert set(_stored(database_url, tenant_id)) == set(ids)
