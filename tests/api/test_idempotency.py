"""Idempotency-Key on every POST: replay, reuse, in flight, failures, expiry."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Annotated

import pytest
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from tally.api.auth import Principal, require_scope
from tally.api.idempotency import canonical_body, fingerprint
from tally.api.schemas import ApiModel
from tally.app.api_keys import authenticate
from tally.app.idempotency import (
    Claimed,
    IdempotentRequest,
    claim_idempotency_key,
    purge_expired_idempotent_requests,
)
from tally.bootstrap import Tally
from tally.core.rejections import Rejected
from tests.api.conftest import MakeHeaders
from tests.api.support import Headers, TestClient, app_with

PATH = "/v1/test/things"


class ThingIn(ApiModel):
    name: str
    mode: str = "ok"


class Thing(BaseModel):
    id: str
    object: str = "thing"
    name: str
    run: int


class Harness:
    """An app with test-only endpoints that count their runs and can be held or made to fail."""

    def __init__(self, tally: Tally) -> None:
        self.runs = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self._lock = threading.Lock()
        app = app_with(tally)
        router = APIRouter()

        @router.post(PATH, status_code=201)
        def create_thing(body: ThingIn, principal: Annotated[Principal, require_scope("admin")]) -> JSONResponse:
            with self._lock:
                self.runs += 1
                run = self.runs
            self.entered.set()
            self.release.wait(timeout=30)
            if body.mode == "raise":
                raise RuntimeError("boom")
            if body.mode == "500":
                return JSONResponse({"error": "down"}, status_code=500)
            if body.mode == "400":
                return JSONResponse({"error": "bad"}, status_code=400, headers={"X-Custom": "kept"})
            thing = Thing(id=f"thing_{run}", name=body.name, run=run)
            return JSONResponse(thing.model_dump(), status_code=201, headers={"Location": f"{PATH}/{thing.id}"})

        @router.post(PATH + "/other", status_code=201)
        def other(body: ThingIn, principal: Annotated[Principal, require_scope("admin")]) -> Thing:
            return Thing(id="other", name=body.name, run=0)

        app.include_router(router)
        self.client = TestClient(app, raise_server_exceptions=False)

    def post(self, headers: Headers, key: str | None, body: dict | None = None, path: str = PATH):  # type: ignore[no-untyped-def]
        extra = {} if key is None else {"Idempotency-Key": key}
        return self.client.post(path, json=body if body is not None else {"name": "a"}, headers={**headers, **extra})


@pytest.fixture
def harness(tally: Tally) -> Iterator[Harness]:
    h = Harness(tally)
    yield h
    h.release.set()


def test_a_repeat_gets_the_stored_response(harness: Harness, admin_headers: Headers) -> None:
    first = harness.post(admin_headers, "k1", {"name": "a", "mode": "ok"})
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    # Same content, other key order and spacing: the same request.
    second = harness.client.post(
        PATH,
        content=b'{ "mode": "ok",   "name": "a" }',
        headers={**admin_headers, "Idempotency-Key": "k1", "Content-Type": "application/json"},
    )
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.content == first.content
    assert second.headers["location"] == first.headers["location"]
    assert second.headers["content-type"] == first.headers["content-type"]
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    assert harness.runs == 1


def test_a_different_request_with_the_same_key_is_refused(harness: Harness, admin_headers: Headers) -> None:
    assert harness.post(admin_headers, "k2", {"name": "a"}).status_code == 201
    for response in (
        harness.post(admin_headers, "k2", {"name": "b"}),
        harness.post(admin_headers, "k2", {"name": "a"}, path=PATH + "/other"),
    ):
        assert response.status_code == 422
        assert response.json()["code"] == "idempotency_key_reused"
    assert harness.runs == 1


def test_a_repeat_while_the_first_runs_gets_409(harness: Harness, admin_headers: Headers) -> None:
    harness.release.clear()
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(harness.post, admin_headers, "k3", {"name": "slow"})
        assert harness.entered.wait(timeout=10)
        in_flight = harness.post(admin_headers, "k3", {"name": "slow"})
        assert in_flight.status_code == 409
        assert in_flight.json()["code"] == "idempotency_request_in_progress"
        assert in_flight.headers["retry-after"] == "1"
        # A different body is still a reuse, in flight or not.
        assert harness.post(admin_headers, "k3", {"name": "other"}).json()["code"] == "idempotency_key_reused"
        harness.release.set()
        assert first.result(timeout=10).status_code == 201
    replay = harness.post(admin_headers, "k3", {"name": "slow"})
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert harness.runs == 1


@pytest.mark.parametrize("mode", ["500", "raise"])
def test_server_errors_are_not_stored(harness: Harness, admin_headers: Headers, mode: str) -> None:
    failed = harness.post(admin_headers, "k4", {"name": "a", "mode": mode})
    assert failed.status_code == 500
    # The key is free again: the retry runs (and, being a different body, is no reuse either).
    retried = harness.post(admin_headers, "k4", {"name": "a", "mode": "ok"})
    assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers
    assert harness.runs == 2


def test_client_errors_are_stored(harness: Harness, admin_headers: Headers) -> None:
    first = harness.post(admin_headers, "k5", {"name": "a", "mode": "400"})
    assert first.status_code == 400
    second = harness.post(admin_headers, "k5", {"name": "a", "mode": "400"})
    assert second.status_code == 400 and second.headers["idempotent-replayed"] == "true"
    assert second.headers["x-custom"] == "kept"
    # Validation errors too (the body is the same bad body).
    invalid = harness.post(admin_headers, "k6", {"name": 5, "extra": 1})
    assert invalid.status_code == 422 and invalid.json()["code"] == "value_must_be_string"
    again = harness.post(admin_headers, "k6", {"name": 5, "extra": 1})
    assert again.headers["idempotent-replayed"] == "true" and again.json() == invalid.json()
    assert harness.runs == 1


def test_keys_are_scoped_per_tenant(
    harness: Harness, admin_headers: Headers, make_headers: MakeHeaders, tally: Tally
) -> None:
    from tally.app.tenants import create_tenant

    other_headers = make_headers(create_tenant(tally.engine, "other"))
    assert harness.post(admin_headers, "shared", {"name": "a"}).json()["run"] == 1
    theirs = harness.post(other_headers, "shared", {"name": "a"})
    assert theirs.status_code == 201 and "idempotent-replayed" not in theirs.headers
    assert theirs.json()["run"] == 2


def test_key_length_is_bounded(harness: Harness, admin_headers: Headers) -> None:
    response = harness.post(admin_headers, "x" * 256)
    assert response.status_code == 400 and response.json()["code"] == "idempotency_key_invalid"
    assert harness.post(admin_headers, "x" * 255).status_code == 201
    assert harness.post(admin_headers, "").json()["code"] == "idempotency_key_invalid"


def test_without_a_key_nothing_is_remembered(harness: Harness, admin_headers: Headers) -> None:
    assert harness.post(admin_headers, None).json()["run"] == 1
    assert harness.post(admin_headers, None).json()["run"] == 2


def test_another_key_of_the_tenant_never_gets_the_stored_response(
    harness: Harness, admin_headers: Headers, make_headers: MakeHeaders, tenant_id: uuid.UUID
) -> None:
    assert harness.post(admin_headers, "mine", {"name": "a"}).status_code == 201
    other_key = make_headers(tenant_id)
    response = harness.post(other_key, "mine", {"name": "a"})
    assert response.status_code == 422 and response.json()["code"] == "idempotency_key_reused"


def test_responses_with_secrets_are_never_stored(
    client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    body = {"name": "ci", "scopes": ["read"]}
    headers = {**admin_headers, "Idempotency-Key": "create-ci-key"}
    first = client.post("/v1/api_keys", json=body, headers=headers)
    assert first.status_code == 201
    secret = first.json()["secret"]
    with tally.engine.connect() as connection:
        stored = connection.execute(
            text("SELECT response_body FROM idempotent_requests WHERE tenant_id = :t AND key = 'create-ci-key'"),
            {"t": tenant_id},
        ).scalar_one()
    assert secret.encode() not in bytes(stored)
    second = client.post("/v1/api_keys", json=body, headers=headers)
    assert second.status_code == 409 and second.headers["idempotent-replayed"] == "true"
    assert second.json()["code"] == "idempotent_response_withheld"
    assert second.json()["object_id"] == first.json()["id"] and second.json()["original_status"] == 201
    assert secret not in second.text
    assert len(client.get("/v1/api_keys", headers=admin_headers).json()["data"]) == 2  # the admin's and one


def test_every_post_route_of_the_api_is_covered(client: TestClient, admin_headers: Headers) -> None:
    created = client.post("/v1/api_keys", json={"name": "ci", "scopes": ["read"]}, headers=admin_headers).json()
    headers = {**admin_headers, "Idempotency-Key": "revoke-ci-key"}
    first = client.post(f"/v1/api_keys/{created['id']}/revoke", headers=headers)
    second = client.post(f"/v1/api_keys/{created['id']}/revoke", headers=headers)
    assert second.headers["idempotent-replayed"] == "true" and second.content == first.content


# -- crashed owners, retention, purge --------------------------------------------------------------


def _insert(
    tally: Tally,
    tenant_id: uuid.UUID,
    key: str,
    *,
    body: dict,
    state: str,
    age: timedelta,
    lock: timedelta,
    headers: Headers | None = None,
) -> None:
    """A row as a crashed or long-gone request of `headers`' API key would have left it."""
    import json

    principal = authenticate(tally.engine, headers["Authorization"].removeprefix("Bearer ")) if headers else None
    api_key_id = principal.api_key_id if principal else None
    now = tally.clock.now()
    with tally.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO idempotent_requests (tenant_id, key, method, path, request_fingerprint, state,"
                " locked_until, response_status, response_headers, response_body, created_at)"
                " VALUES (:tenant, :key, 'POST', :path, :fingerprint, :state, :locked_until, :status,"
                " CAST(:headers AS jsonb), :body, :created_at)"
            ),
            {
                "tenant": tenant_id,
                "key": key,
                "path": PATH,
                "fingerprint": fingerprint("POST", PATH, json.dumps(body).encode(), api_key_id),
                "state": state,
                "locked_until": now + lock,
                "status": 201 if state == "completed" else None,
                "headers": json.dumps([["content-type", "application/json"]]) if state == "completed" else None,
                "body": b'{"stored": true}' if state == "completed" else None,
                "created_at": now - age,
            },
        )


def test_an_in_flight_key_whose_lock_expired_is_taken_over(
    harness: Harness, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    body = {"name": "a"}
    crashed = {"state": "in_flight", "age": timedelta(minutes=5), "lock": -timedelta(seconds=1)}
    running = {"state": "in_flight", "age": timedelta(seconds=1), "lock": timedelta(minutes=1)}
    _insert(tally, tenant_id, "crashed", body=body, headers=admin_headers, **crashed)  # type: ignore[arg-type]
    _insert(tally, tenant_id, "running", body=body, headers=admin_headers, **running)  # type: ignore[arg-type]
    assert harness.post(admin_headers, "running", body).status_code == 409
    taken_over = harness.post(admin_headers, "crashed", body)
    assert taken_over.status_code == 201 and harness.runs == 1
    assert harness.post(admin_headers, "crashed", body).headers["idempotent-replayed"] == "true"


def test_keys_past_retention_are_forgotten(
    harness: Harness, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    old = timedelta(hours=tally.settings.idempotency_retention_hours, minutes=1)
    then = {"body": {"name": "then"}, "state": "completed", "lock": timedelta(0), "headers": admin_headers}
    _insert(tally, tenant_id, "old", age=old, **then)  # type: ignore[arg-type]
    _insert(tally, tenant_id, "recent", age=timedelta(hours=1), **then)  # type: ignore[arg-type]
    assert harness.post(admin_headers, "recent", {"name": "then"}).json() == {"stored": True}
    fresh = harness.post(admin_headers, "old", {"name": "now"})  # a different body, yet no reuse error
    assert fresh.status_code == 201 and fresh.json()["name"] == "now"


def test_purge_deletes_only_rows_past_retention(tally: Tally, tenant_id: uuid.UUID) -> None:
    for index in range(3):
        _insert(tally, tenant_id, f"old{index}", body={}, state="completed", age=timedelta(hours=30), lock=timedelta(0))
    _insert(tally, tenant_id, "stale-in-flight", body={}, state="in_flight", age=timedelta(hours=30), lock=timedelta(0))
    _insert(tally, tenant_id, "new", body={}, state="completed", age=timedelta(hours=1), lock=timedelta(0))
    purged = purge_expired_idempotent_requests(tally.engine, tally.clock.now(), retention_hours=24)
    assert purged >= 4
    with tally.engine.connect() as connection:
        left = (
            connection.execute(text("SELECT key FROM idempotent_requests WHERE tenant_id = :t"), {"t": tenant_id})
            .scalars()
            .all()
        )
    assert left == ["new"]


def test_one_claim_wins_a_race(tally: Tally, tenant_id: uuid.UUID) -> None:
    request = IdempotentRequest(tenant_id=tenant_id, key="race", method="POST", path=PATH, fingerprint=b"f" * 32)
    barrier = threading.Barrier(8)

    def claim() -> str:
        barrier.wait()
        try:
            result = claim_idempotency_key(
                tally.engine, request, now=tally.clock.now(), lock_seconds=60, retention_hours=24
            )
        except Rejected as rejected:
            return rejected.rejection.code
        return "claimed" if isinstance(result, Claimed) else "replayed"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda _: claim(), range(8)))
    assert outcomes.count("claimed") == 1
    assert outcomes.count("idempotency_request_in_progress") == 7


def test_canonical_bodies() -> None:
    assert canonical_body(b'{"b": 1, "a": [1, 2]}') == canonical_body(b'{"a":[1,2],"b":1}')
    assert canonical_body(b"  ") == b""
    assert canonical_body(b"not json") == b"not json"
    assert fingerprint("POST", "/a", b"{}") != fingerprint("POST", "/b", b"{}")
