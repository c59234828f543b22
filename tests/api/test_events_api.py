"""POST /v1/events (JSON, NDJSON, gzip, limits), reading events, and corrections over HTTP."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from tally.bootstrap import Tally
from tests.api.conftest import MakeHeaders
from tests.api.support import Headers, TestClient, app_with

# One timestamp for the whole module, so that an event built twice is the same event.
TIMESTAMP = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()


def event(event_id: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": event_id,
        "customer": "cus_1",
        "type": "api_call",
        "timestamp": TIMESTAMP,
        "properties": {"tokens": 10},
    }
    values.update(changes)
    return values


def stored(tally: Tally, tenant_id: uuid.UUID) -> int:
    with tally.engine.connect() as connection:
        return int(
            connection.execute(text("SELECT count(*) FROM events WHERE tenant_id = :t"), {"t": tenant_id}).scalar_one()
        )


def post(client: TestClient, headers: Headers, body: bytes, **extra_headers: str) -> Any:
    return client.post("/v1/events", content=body, headers={**headers, **extra_headers})


JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def test_one_event_and_a_batch(client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID) -> None:
    one = client.post("/v1/events", json=event("a"), headers=admin_headers)
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["object"] == "event_ingest_result"
    assert (body["accepted"], body["duplicate"], body["conflict"], body["rejected"]) == (1, 0, 0, 0)
    assert body["results"] == [{"index": 0, "id": "a", "result": "accepted"}]
    assert isinstance(body["batch_id"], int)
    batch = client.post(
        "/v1/events",
        json=[event("a"), event("b"), event("b", customer="cus_2"), event("c", timestamp="2020-01-01T00:00:00Z"), 7],
        headers=admin_headers,
    )
    assert batch.status_code == 200
    results = batch.json()["results"]
    assert [item["result"] for item in results] == ["duplicate", "accepted", "conflict", "rejected", "rejected"]
    assert results[2]["code"] == "exists_with_different_content" and results[2]["field"] == "id"
    assert results[3] == {
        "index": 3,
        "id": "c",
        "result": "rejected",
        "code": "timestamp_too_old",
        "field": "timestamp",
        "message": results[3]["message"],
    }
    assert results[4]["code"] == "event_must_be_object" and results[4]["id"] is None
    assert stored(tally, tenant_id) == 2
    with tally.engine.connect() as connection:
        audited = connection.execute(
            text("SELECT object_type, object_id FROM audit_log WHERE tenant_id = :t AND action = 'POST /v1/events'"),
            {"t": tenant_id},
        ).all()
    assert sorted(tuple(row) for row in audited) == sorted(
        ("ingest_batch", str(batch_id)) for batch_id in (body["batch_id"], batch.json()["batch_id"])
    )


def test_ndjson_and_gzip(client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID) -> None:
    lines = "\n".join(json.dumps(event(f"n{number}")) for number in range(3)) + "\n\n"
    response = post(client, admin_headers, lines.encode(), **NDJSON)
    assert response.status_code == 200 and response.json()["accepted"] == 3
    compressed = gzip.compress(json.dumps([event("g1"), event("g2")]).encode())
    response = post(client, admin_headers, compressed, **JSON, **{"Content-Encoding": "gzip"})
    assert response.status_code == 200 and response.json()["accepted"] == 2
    ndjson_gzip = gzip.compress(json.dumps(event("g3")).encode()) + gzip.compress(
        b"\n" + json.dumps(event("g4")).encode()
    )
    response = post(client, admin_headers, ndjson_gzip, **NDJSON, **{"Content-Encoding": "gzip"})
    assert response.status_code == 200 and response.json()["accepted"] == 2  # two gzip members, one after the other
    assert stored(tally, tenant_id) == 7


def test_numbers_stay_exact_and_unstorable_ones_reject_their_event(
    client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    body = (
        "["
        + json.dumps(event("exact"))[:-1]
        + ', "properties": {"cost": 0.1000000000000000055511151231257827, "big": 12345678901234567890123456789}}'
        + ","
        + json.dumps(event("nan"))[:-1]
        + ', "properties": {"x": NaN}}'
        + ","
        + json.dumps(event("inf"))[:-1]
        + ', "properties": {"x": -Infinity}}'
        + ","
        + json.dumps(event("huge"))[:-1]
        + ', "properties": {"x": 1'
        + "0" * 60
        + "}}"
        + ","
        + json.dumps(event("huger"))[:-1]
        + ', "properties": {"x": 1'
        + "0" * 6000
        + "}}"
        + "]"
    )
    response = post(client, admin_headers, body.encode(), **JSON)
    assert response.status_code == 200, response.text
    assert [(item["result"], item.get("code")) for item in response.json()["results"]] == [
        ("accepted", None),
        ("rejected", "number_must_be_finite"),
        ("rejected", "number_must_be_finite"),
        ("rejected", "number_out_of_range"),
        ("rejected", "number_out_of_range"),
    ]
    got = client.get("/v1/events/exact", headers=admin_headers)
    assert '"cost": 0.1000000000000000055511151231257827' in got.text
    assert '"big": 12345678901234567890123456789' in got.text


UNUSABLE_REQUESTS: list[tuple[bytes, dict[str, str], int, str]] = [
    (b"{not json", JSON, 422, "malformed_json"),
    (b"", JSON, 422, "request_body_required"),
    (b"\xff\xfe", JSON, 422, "malformed_json"),
    (b'"an event"', JSON, 422, "request_body_must_be_event_or_list"),
    (b"42", JSON, 422, "request_body_must_be_event_or_list"),
    (b"null", JSON, 422, "request_body_must_be_event_or_list"),
    (b'{"id": "a"}\n{oops\n', NDJSON, 422, "malformed_json"),
    (b"id=a", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
    (b"{}", {**JSON, "Content-Encoding": "br"}, 415, "content_encoding_unsupported"),
    (b"not gzip at all", {**JSON, "Content-Encoding": "gzip"}, 400, "request_body_gzip_invalid"),
    (gzip.compress(b"[]", mtime=0)[:-6], {**JSON, "Content-Encoding": "gzip"}, 400, "request_body_gzip_invalid"),
    (b"[" * 100_000 + b"]" * 100_000, JSON, 422, "malformed_json"),
]


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [pytest.param(*case, id=f"{index}-{case[3]}") for index, case in enumerate(UNUSABLE_REQUESTS)],
)
def test_unusable_requests_are_problems_and_write_nothing(
    client: TestClient,
    admin_headers: Headers,
    tally: Tally,
    tenant_id: uuid.UUID,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    response = post(client, admin_headers, body, **headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert stored(tally, tenant_id) == 0


def test_a_malformed_ndjson_line_is_named(client: TestClient, admin_headers: Headers) -> None:
    body = (json.dumps(event("a")) + "\n" + json.dumps(event("b")) + "\n{oops\n").encode()
    problem = post(client, admin_headers, body, **NDJSON).json()
    assert problem["code"] == "malformed_json" and problem["field"] == "[2]" and "line 3" in problem["detail"]


def test_more_than_ten_thousand_events_is_refused_whole(
    client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    line = json.dumps(event("x"))
    array = ("[" + ",".join([line] * 10_001) + "]").encode()
    response = post(client, admin_headers, array, **JSON)
    assert response.status_code == 413 and response.json()["code"] == "batch_too_large"
    lines = ("\n".join([line] * 10_001)).encode()
    response = post(client, admin_headers, lines, **NDJSON)
    assert response.status_code == 413 and response.json()["code"] == "batch_too_large"
    assert stored(tally, tenant_id) == 0


def test_an_empty_batch_is_answered_and_writes_nothing(client: TestClient, admin_headers: Headers) -> None:
    response = client.post("/v1/events", json=[], headers=admin_headers)
    assert response.status_code == 200
    assert response.json()["batch_id"] is None and response.json()["results"] == []


@pytest.fixture
def small_limits_client(tally: Tally) -> Iterator[TestClient]:
    app = app_with(tally, request_body_bytes_max=64 * 1024, ingest_body_bytes_max=128 * 1024)
    with TestClient(app) as client:
        yield client


def test_body_limits_and_gzip_bombs(
    small_limits_client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    client = small_limits_client
    too_big = json.dumps([event(f"e{number}", properties={"pad": "x" * 1000}) for number in range(80)]).encode()
    response = post(client, admin_headers, too_big, **JSON)
    assert response.status_code == 413 and response.json()["code"] == "request_body_too_large"
    # A gzip bomb: 16 MiB of spaces compress to ~16 KiB; decompression stops at the limit.
    bomb = gzip.compress(b"[" + b" " * (16 * 1024 * 1024) + b"]", compresslevel=9)
    assert len(bomb) < 64 * 1024
    response = post(client, admin_headers, bomb, **JSON, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413 and response.json()["code"] == "decompressed_body_too_large"
    # Within both limits, compressed: fine.
    fits = gzip.compress(
        json.dumps([event(f"f{number}", properties={"pad": "x" * 1000}) for number in range(100)]).encode()
    )
    response = post(client, admin_headers, fits, **JSON, **{"Content-Encoding": "gzip"})
    assert response.status_code == 200 and response.json()["accepted"] == 100
    assert stored(tally, tenant_id) == 100


def test_the_ingest_scope_is_enough_and_read_is_not(
    client: TestClient, make_headers: MakeHeaders, tenant_id: uuid.UUID
) -> None:
    ingest = make_headers(tenant_id, scopes=("ingest",))
    read = make_headers(tenant_id, scopes=("read",))
    assert client.post("/v1/events", json=event("a"), headers=ingest).status_code == 200
    refused = client.post("/v1/events", json=event("b"), headers=read)
    assert refused.status_code == 403 and refused.json()["code"] == "api_key_scope_insufficient"
    assert client.post("/v1/events/a/retract", headers=ingest).status_code == 201
    assert client.get("/v1/events/a", headers=ingest).status_code == 403
    assert client.get("/v1/events/a", headers=read).status_code == 200


def test_idempotency_key_header_works_and_replays(client: TestClient, admin_headers: Headers) -> None:
    headers = {**admin_headers, "Idempotency-Key": uuid.uuid4().hex}
    batch = [event(f"k{number}") for number in range(5)]
    first = client.post("/v1/events", json=batch, headers=headers)
    second = client.post("/v1/events", json=batch, headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.headers.get("idempotent-replayed") == "true"
    assert second.json() == first.json()
    # Without the header, a resend is answered by the events' own idempotency.
    third = client.post("/v1/events", json=batch, headers=admin_headers)
    assert third.json()["duplicate"] == 5


def test_large_answers_pass_through_the_idempotency_layer(client: TestClient, admin_headers: Headers) -> None:
    headers = {**admin_headers, "Idempotency-Key": uuid.uuid4().hex, **NDJSON}
    long_id = "i" * 200
    body = "\n".join(json.dumps(event(f"{long_id}{number}")) for number in range(6000)).encode()
    response = post(client, headers, body)
    assert response.status_code == 200
    assert len(response.content) > 1024 * 1024  # over the size the idempotency layer stores
    assert response.json()["accepted"] == 6000


def test_get_event_with_corrections(client: TestClient, admin_headers: Headers) -> None:
    client.post("/v1/events", json=event("a/b c", properties={"tokens": 5}), headers=admin_headers)
    got = client.get("/v1/events/a%2Fb%20c", headers=admin_headers)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["object"] == "event" and body["id"] == "a/b c" and body["properties"] == {"tokens": 5}
    assert body["retracted"] is False and body["effective_properties"] == {"tokens": 5} and body["corrections"] == []
    amended = client.post(
        "/v1/events/a%2Fb%20c/amend", json={"properties": {"tokens": 6}, "reason": "recount"}, headers=admin_headers
    )
    assert amended.status_code == 201, amended.text
    correction = amended.json()
    assert correction["object"] == "event_correction" and correction["id"].startswith("evc_")
    assert correction["kind"] == "amend" and correction["properties"] == {"tokens": 6} and correction["late"] is False
    repeated = client.post("/v1/events/a%2Fb%20c/amend", json={"properties": {"tokens": 6}}, headers=admin_headers)
    assert repeated.status_code == 200 and repeated.json()["id"] == correction["id"]
    retracted = client.post("/v1/events/a%2Fb%20c/retract", headers=admin_headers)
    assert retracted.status_code == 201 and retracted.json()["properties"] is None
    assert client.post("/v1/events/a%2Fb%20c/retract", json={}, headers=admin_headers).status_code == 200
    refused = client.post("/v1/events/a%2Fb%20c/amend", json={"properties": {}}, headers=admin_headers)
    assert refused.status_code == 409 and refused.json()["code"] == "event_already_retracted"
    body = client.get("/v1/events/a%2Fb%20c", headers=admin_headers).json()
    assert body["retracted"] is True and body["effective_properties"] is None
    assert body["properties"] == {"tokens": 5}
    assert [item["kind"] for item in body["corrections"]] == ["amend", "retract"]


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/events/nope/retract", None, 404, "event_not_found"),
        ("/v1/events/nope/amend", {"properties": {"a": 1}}, 404, "event_not_found"),
        ("/v1/events/known/amend", {}, 422, "properties_required"),
        ("/v1/events/known/amend", {"properties": {"a": 1}, "extra": 1}, 422, "unknown_field"),
        ("/v1/events/known/retract", {"properties": {"a": 1}}, 422, "unknown_field"),
        ("/v1/events/known/amend", {"properties": {"a": "x" * 40_000}}, 422, "properties_too_large"),
        ("/v1/events/known/amend", [1], 422, "value_must_be_object"),
    ],
)
def test_correction_problems(
    client: TestClient, admin_headers: Headers, path: str, body: Any, status: int, code: str
) -> None:
    client.post("/v1/events", json=event("known"), headers=admin_headers)
    response = (
        client.post(path, json=body, headers=admin_headers)
        if body is not None
        else client.post(path, headers=admin_headers)
    )
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


def test_get_unknown_event_is_404(client: TestClient, admin_headers: Headers) -> None:
    response = client.get("/v1/events/unknown", headers=admin_headers)
    assert response.status_code == 404 and response.json()["code"] == "event_not_found"


def test_listing_pages_by_time_then_id(client: TestClient, admin_headers: Headers) -> None:
    now = datetime.now(UTC)
    batch = [event(f"l{number}", timestamp=(now - timedelta(minutes=number)).isoformat()) for number in range(5)]
    batch.append(event("other", customer="cus_2"))
    client.post("/v1/events", json=batch, headers=admin_headers)
    seen: list[str] = []
    url = "/v1/events?customer=cus_1&limit=2"
    cursor = None
    while True:
        page = client.get(url + (f"&starting_after={cursor}" if cursor else ""), headers=admin_headers).json()
        assert page["object"] == "list" and page["url"] == "/v1/events"
        seen += [item["id"] for item in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == ["l4", "l3", "l2", "l1", "l0"]
    everything = client.get("/v1/events", headers=admin_headers).json()
    assert {item["id"] for item in everything["data"]} == {*seen, "other"}
    for query, code in (
        ("?from=2026-01-01T00:00:00", "datetime_must_have_timezone"),
        ("?limit=5000", "limit_out_of_range"),
        ("?starting_after=nonsense", "cursor_invalid"),
        ("?from=2020-01-01T00:00:00Z&to=2021-01-01T00:00:00Z", "time_range_too_long"),
    ):
        response = client.get("/v1/events" + query, headers=admin_headers)
        assert response.status_code == 422 and response.json()["code"] == code, query
