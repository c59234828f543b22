"""The Python client without a server: encoding, retries, batching, bounded memory, failures."""

from __future__ import annotations

import gzip
import json
import random
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest

from tally.client import (
    BufferFullError,
    Client,
    DeliveryFailedError,
    Event,
    EventResult,
    FailedBatch,
    Ingestor,
    IngestorClosedError,
    RequestRefusedError,
    ServerUnavailableError,
    encode_value,
    new_event_id,
)
from tally.client._client import BACKOFF_CAP_S, backoff_s
from tests.client.fake_server import FakeIngestServer, connection_dropped, status, stored_then_dropped

NO_SLEEP = {"sleep": lambda _: None}


def _client(server: FakeIngestServer, **options) -> Client:
    return Client("http://tally.test", "tally_sk_test", transport=server.transport(), **{**NO_SLEEP, **options})


# Encoding.


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("0.000002"), "0.000002"),
        (Decimal("123456789012345678901234567890.123456789"), "123456789012345678901234567890.123456789"),
        (Decimal("1E+3"), "1E+3"),
        (Decimal("-0.10"), "-0.10"),
        (10**30, "1000000000000000000000000000000"),
        (1.5, "1.5"),
        (True, "true"),
        (None, "null"),
        ('é"\n', '"\\u00e9\\"\\n"'),
        ({"a": [1, Decimal("2.5"), {"b": False}]}, '{"a":[1,2.5,{"b":false}]}'),
    ],
)
def test_values_are_encoded_exactly(value, expected) -> None:
    assert encode_value(value) == expected
    # And they read back as the same number, digit for digit.
    assert json.loads(encode_value(value), parse_float=Decimal) == (
        value if not isinstance(value, float) else Decimal(expected)
    )


@pytest.mark.parametrize(
    "value", [Decimal("NaN"), Decimal("Infinity"), float("nan"), float("inf"), {1: "x"}, {1, 2}, b"bytes"]
)
def test_values_json_cannot_hold_are_refused(value) -> None:
    with pytest.raises((ValueError, TypeError)):
        encode_value(value)


def test_a_cycle_is_refused_not_recursed_forever() -> None:
    cyclic: dict = {}
    cyclic["self"] = cyclic
    with pytest.raises(ValueError, match="nest deeper"):
        encode_value(cyclic)


def test_an_event_encodes_its_timestamp_and_refuses_naive_ones() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=timezone(timedelta(hours=2)))
    event = Event(id="e1", customer="acme", type="tokens", timestamp=at, properties={"n": Decimal("1.10")})
    assert json.loads(event.to_json(), parse_float=Decimal) == {
        "id": "e1",
        "customer": "acme",
        "type": "tokens",
        "timestamp": "2026-01-02T03:04:05.600000+02:00",
        "properties": {"n": Decimal("1.10")},
    }
    with pytest.raises(ValueError, match="timezone-aware"):
        Event(customer="a", type="t", timestamp=datetime(2026, 1, 1)).to_json()


def test_generated_ids_are_unique_and_time_ordered() -> None:
    ids = [new_event_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(value[14] == "7" for value in ids)  # UUID version 7


def test_backoff_has_full_jitter_under_a_growing_cap() -> None:
    rng = random.Random(1)
    for attempt in range(1, 20):
        delays = [backoff_s(attempt, rng) for _ in range(50)]
        assert all(0 <= delay <= min(BACKOFF_CAP_S, 0.1 * 2 ** (attempt - 1)) for delay in delays)
        assert len(set(delays)) > 1


# Client.ingest


def test_ingest_sends_gzip_and_answers_per_event_in_order() -> None:
    server = FakeIngestServer()
    with _client(server) as client:
        response = client.ingest(
            [
                Event(id="a", customer="acme", type="t", properties={"n": Decimal("0.000002")}),
                {"id": "b", "customer": "", "type": "t"},
                {"id": "a", "customer": "acme", "type": "t", "properties": {"n": 1}},
            ]
        )
    assert [(result.id, result.status) for result in response.results] == [
        ("a", "accepted"),
        ("b", "rejected"),
        ("a", "conflict"),
    ]
    assert response.results[1].code == "value_too_short" and response.results[1].field == "customer"
    assert [result.id for result in response.refused] == ["b", "a"]
    assert server.stored["a"]["properties"]["n"] == Decimal("0.000002")


def test_a_503_then_ok_stores_each_id_once() -> None:
    server = FakeIngestServer()
    server.fail_next(status(503))
    events = [Event(customer="acme", type="t", properties={"n": index}) for index in range(100)]
    with _client(server) as client:
        response = client.ingest(events)
    assert response.attempts == 2 and server.requests == 2
    assert response.count("accepted") == 100
    assert set(server.stored) == {event.id for event in events}


def test_a_batch_stored_before_the_connection_broke_comes_back_as_duplicates() -> None:
    server = FakeIngestServer()
    server.fail_next(stored_then_dropped(server), connection_dropped, status(429, **{"Retry-After": "0"}))
    events = [Event(customer="acme", type="t") for _ in range(10)]
    with _client(server) as client:
        response = client.ingest(events)
    assert response.attempts == 4
    assert response.count("duplicate") == 10, "the resend carried the same ids"
    assert len(server.stored) == 10
    # Every attempt sent the very same bytes.
    assert len({gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body for body in server.bodies}) == 1


def test_retry_after_is_honoured() -> None:
    server = FakeIngestServer()
    server.fail_next(status(429, **{"Retry-After": "2.5"}))
    slept: list[float] = []
    with Client("http://t", "k", transport=server.transport(), sleep=slept.append) as client:
        client.ingest([Event(customer="c", type="t")])
    assert slept == [2.5]


def test_retries_run_out() -> None:
    server = FakeIngestServer()
    server.fail_next(*[status(502)] * 4)
    with _client(server, max_retries=3) as client, pytest.raises(ServerUnavailableError) as raised:
        client.ingest([Event(customer="c", type="t")])
    assert raised.value.attempts == 4 and server.requests == 4


def test_a_refused_request_is_not_retried() -> None:
    server = FakeIngestServer()
    server.fail_next(lambda _: httpx.Response(401, json={"code": "api_key_invalid", "detail": "no", "request_id": "r"}))
    with _client(server) as client, pytest.raises(RequestRefusedError) as raised:
        client.ingest([Event(customer="c", type="t")])
    assert (raised.value.status, raised.value.code, raised.value.request_id) == (401, "api_key_invalid", "r")
    assert server.requests == 1


def test_too_many_events_for_one_request() -> None:
    with _client(FakeIngestServer()) as client, pytest.raises(ValueError, match="at most 10000"):
        client.ingest([Event(customer="c", type="t", id=str(index)) for index in range(10_001)])


# Ingestor


def test_the_ingestor_batches_and_flushes_on_close() -> None:
    server = FakeIngestServer()
    with Ingestor("http://t", "k", batch_size=100, flush_interval_s=60, client=_client(server)) as ingestor:
        ids = [ingestor.track(customer="acme", type="t", properties={"i": index}) for index in range(250)]
    assert set(server.stored) == set(ids)
    assert server.requests == 3  # 100 + 100 + the 50 left at close
    stats = ingestor.stats
    assert (stats.tracked, stats.accepted, stats.failed) == (250, 250, 0)


def test_the_ingestor_sends_a_partial_batch_after_the_flush_interval() -> None:
    server = FakeIngestServer()
    with Ingestor("http://t", "k", batch_size=1000, flush_interval_s=0.05, client=_client(server)) as ingestor:
        event_id = ingestor.track(customer="acme", type="t")
        deadline = time.monotonic() + 5
        while event_id not in server.stored and time.monotonic() < deadline:
            time.sleep(0.01)
        assert event_id in server.stored


def test_flush_waits_for_the_answer() -> None:
    server = FakeIngestServer()
    with Ingestor("http://t", "k", batch_size=1000, flush_interval_s=60, client=_client(server)) as ingestor:
        ingestor.track(customer="acme", type="t", id="x", timestamp="2026-01-01T00:00:00Z")
        assert ingestor.flush(timeout_s=5)
        assert "x" in server.stored
        assert ingestor.stats.accepted == 1


def test_retries_resend_the_same_ids_and_nothing_is_counted_twice() -> None:
    server = FakeIngestServer()
    server.fail_next(stored_then_dropped(server), status(503), connection_dropped)
    ingestor = Ingestor("http://t", "k", batch_size=50, flush_interval_s=60, client=_client(server))
    ids = [ingestor.track(customer="acme", type="t") for _ in range(200)]
    stats = ingestor.close()
    assert set(server.stored) == set(ids)
    assert stats.accepted + stats.duplicate == 200 and stats.duplicate == 50
    assert stats.retries == 3


def test_refusals_reach_the_callback() -> None:
    server = FakeIngestServer()
    refused: list[EventResult] = []
    with Ingestor("http://t", "k", client=_client(server), on_refused=refused.append) as ingestor:
        ingestor.track(customer="", type="t", id="bad")
        ingestor.track(customer="acme", type="t", id="good")
    assert [(result.id, result.code) for result in refused] == [("bad", "value_too_short")]
    assert ingestor.stats.rejected == 1


def test_refusals_without_a_callback_are_kept_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with Ingestor("http://t", "k", client=_client(FakeIngestServer())) as ingestor:
        ingestor.track(customer="", type="t", id="bad")
    assert [result.id for result in ingestor.refused] == ["bad"]
    assert "refused event bad" in caplog.text


def test_undeliverable_batches_go_to_on_failed_with_their_events() -> None:
    server = FakeIngestServer()
    server.fail_next(*[status(503)] * 3)
    failed: list[FailedBatch] = []
    with Ingestor(
        "http://t", "k", client=_client(server, max_retries=2), on_failed=failed.append, flush_interval_s=60
    ) as ingestor:
        ingestor.track(customer="acme", type="t", id="lost", properties={"n": Decimal("1.5")})
    [batch] = failed
    assert batch.ids == ("lost",) and isinstance(batch.error, ServerUnavailableError)
    assert json.loads(batch.events_json[0], parse_float=Decimal)["properties"] == {"n": Decimal("1.5")}
    assert ingestor.stats.failed == 1


def test_undeliverable_batches_without_a_callback_fail_close() -> None:
    server = FakeIngestServer()
    server.fail_next(lambda _: httpx.Response(401, json={"code": "api_key_invalid"}))
    ingestor = Ingestor("http://t", "k", client=_client(server))
    ingestor.track(customer="acme", type="t", id="lost")
    with pytest.raises(DeliveryFailedError) as raised:
        ingestor.close()
    assert raised.value.failed_events == 1
    assert ingestor.close().failed == 1, "closing again is a no-op"


def test_a_full_buffer_blocks_then_raises() -> None:
    release = threading.Event()
    server = FakeIngestServer()

    def slow(request: httpx.Request) -> httpx.Response:
        release.wait(10)
        return server.store(request)

    server.fail_next(slow)
    ingestor = Ingestor(
        "http://t",
        "k",
        batch_size=2,
        max_buffered=4,
        block_timeout_s=0.1,
        flush_interval_s=0.01,
        client=_client(server),
    )
    for _ in range(4):
        ingestor.track(customer="acme", type="t")  # 2 in flight (stuck), 2 waiting
    started = time.monotonic()
    with pytest.raises(BufferFullError, match="max_buffered"):
        ingestor.track(customer="acme", type="t")
    assert time.monotonic() - started >= 0.1
    release.set()
    deadline = time.monotonic() + 10
    while ingestor.stats.requests == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    ingestor.track(customer="acme", type="t")  # room again: the stuck request was answered
    assert ingestor.close().accepted == 5


def test_track_refuses_bad_values_in_the_callers_thread_and_after_close() -> None:
    ingestor = Ingestor("http://t", "k", client=_client(FakeIngestServer()))
    with pytest.raises(ValueError, match="timezone-aware"):
        ingestor.track(customer="a", type="t", timestamp=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="NaN"):
        ingestor.track(customer="a", type="t", properties={"n": Decimal("NaN")})
    ingestor.close()
    with pytest.raises(IngestorClosedError):
        ingestor.track(customer="a", type="t")


def test_many_threads_track_concurrently_with_several_senders() -> None:
    server = FakeIngestServer()
    server.fail_next(status(500), connection_dropped, stored_then_dropped(server))
    ingestor = Ingestor(
        "http://t", "k", batch_size=64, max_buffered=256, senders=3, flush_interval_s=0.01, client=_client(server)
    )
    tracked: list[list[str]] = [[] for _ in range(4)]

    def produce(share: list[str]) -> None:
        for index in range(500):
            share.append(ingestor.track(customer=f"c{index % 7}", type="t", timestamp=datetime.now(UTC)))

    threads = [threading.Thread(target=produce, args=(share,)) for share in tracked]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = ingestor.close()
    every_id = {event_id for share in tracked for event_id in share}
    assert set(server.stored) == every_id and len(every_id) == 2000
    assert stats.accepted + stats.duplicate == 2000 and stats.failed == 0
