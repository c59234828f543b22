"""Errors: every one is problem+json with a stable code, a field path and the request id."""

from __future__ import annotations

import uuid
from typing import Annotated

import pytest
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from tally.api import problems
from tally.api.app import create_app
from tally.api.auth import Principal, require_scope
from tally.api.problems import field_path, register_status, status_for, validation_code
from tally.api.schemas import ApiModel
from tally.bootstrap import Tally
from tally.core.rejections import Rejected
from tests.api.support import Headers, TestClient, app_with


def assert_problem(response, status: int, code: str, field: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    assert body["type"] == f"https://tally.dev/problems/{code}"
    assert body["status"] == status
    assert body["field"] == field
    assert body["title"] and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


# -- the tables -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        (("body", "entries", 1, "amount"), "entries[1].amount"),
        (("body", "name"), "name"),
        (("query", "limit"), "limit"),
        (("body",), None),
        (("body", 0), "[0]"),
        (("body", "metadata", "a"), "metadata.a"),
    ],
)
def test_field_paths_read_like_json_paths(location: tuple, expected: str | None) -> None:
    assert field_path(location) == expected


def test_validation_codes_come_from_a_small_table() -> None:
    assert validation_code("missing") == "field_required"
    assert validation_code("extra_forbidden") == "unknown_field"
    assert validation_code("int_parsing") == "value_must_be_integer"
    assert validation_code("json_invalid") == "malformed_json"
    assert validation_code("url_parsing") == "value_invalid"  # a pydantic type not in the table
    assert validation_code("currency_must_be_iso_4217") == "currency_must_be_iso_4217"  # our own


def test_status_defaults_and_registration() -> None:
    assert status_for("api_key_required") == 401
    assert status_for("api_key_scope_insufficient") == 403
    assert status_for("idempotency_request_in_progress") == 409
    assert status_for("widget_not_found") == 404
    assert status_for("widget_must_be_blue") == 422
    register_status("test_widget_locked", 423)
    register_status("test_widget_locked", 423)  # the same again is fine
    assert status_for("test_widget_locked") == 423
    with pytest.raises(ValueError, match="already answers"):
        register_status("test_widget_locked", 409)
    with pytest.raises(ValueError, match="snake_case"):
        register_status("Widget Locked", 409)
    with pytest.raises(ValueError, match="4xx or 5xx"):
        register_status("test_widget_fine", 200)


# -- over HTTP ----------------------------------------------------------------------------------


class Entry(ApiModel):
    amount: int


class Body(ApiModel):
    name: str
    entries: list[Entry] = Field(default_factory=list)


class Answer(BaseModel):
    ok: bool


def _test_app(tally: Tally, **settings: object) -> TestClient:
    app = app_with(tally, **settings)
    router = APIRouter()

    @router.post("/v1/test/problems")
    def validate(body: Body, principal: Annotated[Principal, require_scope("admin")]) -> Answer:
        return Answer(ok=True)

    @router.post("/v1/test/reject")
    def reject(principal: Annotated[Principal, require_scope("admin")]) -> Answer:
        raise Rejected.because("gadget_must_be_shiny", "the gadget is dull", "gadget")

    @router.get("/v1/test/crash")
    def crash(request: Request, principal: Annotated[Principal, require_scope("admin")]) -> Answer:
        raise RuntimeError("secret internals: password=hunter2")

    app.include_router(router)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def test_client(tally: Tally) -> TestClient:
    return _test_app(tally)


def test_unknown_fields_are_refused(test_client: TestClient, admin_headers: Headers) -> None:
    response = test_client.post("/v1/test/problems", json={"name": "a", "colour": "red"}, headers=admin_headers)
    body = assert_problem(response, 422, "unknown_field", "colour")
    assert body["errors"] == [{"code": "unknown_field", "field": "colour", "detail": "unknown field 'colour'"}]


def test_nested_field_paths_and_every_error_listed(test_client: TestClient, admin_headers: Headers) -> None:
    response = test_client.post(
        "/v1/test/problems", json={"entries": [{"amount": 1}, {"amount": "lots"}]}, headers=admin_headers
    )
    body = assert_problem(response, 422, "field_required", "name")
    assert [error["code"] for error in body["errors"]] == ["field_required", "value_must_be_integer"]
    assert body["errors"][1]["field"] == "entries[1].amount"


def test_malformed_and_missing_bodies(test_client: TestClient, admin_headers: Headers) -> None:
    json_headers = {**admin_headers, "Content-Type": "application/json"}
    assert_problem(test_client.post("/v1/test/problems", content=b"{nope", headers=json_headers), 422, "malformed_json")
    assert_problem(test_client.post("/v1/test/problems", headers=admin_headers), 422, "request_body_required")
    assert_problem(
        test_client.post("/v1/test/problems", content=b'{"name": "a"}', headers=admin_headers),
        422,
        "request_body_must_be_json",
    )


def test_rejections_map_to_their_status(test_client: TestClient, admin_headers: Headers) -> None:
    body = assert_problem(
        test_client.post("/v1/test/reject", headers=admin_headers), 422, "gadget_must_be_shiny", "gadget"
    )
    assert body["detail"] == "the gadget is dull"


def test_unknown_routes_and_methods(client: TestClient, admin_headers: Headers) -> None:
    assert_problem(client.get("/v1/no_such_thing", headers=admin_headers), 404, "route_not_found")
    assert_problem(client.get("/nowhere"), 404, "route_not_found")
    response = client.delete("/v1/api_keys", headers=admin_headers)
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"]  # the framework names the methods of the first route matching the path


def test_unexpected_errors_leak_nothing(
    test_client: TestClient, admin_headers: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    response = test_client.get("/v1/test/crash", headers=admin_headers)
    body = assert_problem(response, 500, "internal_error")
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    logged = [record for record in caplog.records if record.name == "tally.api.errors"]
    assert logged and logged[0].exc_info is not None
    assert getattr(logged[0], "request_id", None) == body["request_id"]


def test_bodies_over_the_limit_are_refused_before_reading(tally: Tally, tenant_id: uuid.UUID, make_headers) -> None:  # type: ignore[no-untyped-def]
    test_client = _test_app(tally, request_body_bytes_max=1024)
    headers = make_headers(tenant_id)
    big = {"name": "x" * 2000}
    # Content-Length says it: refused at once.
    assert_problem(test_client.post("/v1/test/problems", json=big, headers=headers), 413, "request_body_too_large")

    # Chunked upload, no Content-Length: refused once the bytes read pass the limit.
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"name": "'
        for _ in range(10):
            yield b"x" * 200
        yield b'"}'

    response = test_client.post(
        "/v1/test/problems", content=chunks(), headers={**headers, "Content-Type": "application/json"}
    )
    assert_problem(response, 413, "request_body_too_large")
    # ...also when the idempotency middleware is the one reading the body.
    response = test_client.post(
        "/v1/test/problems",
        content=chunks(),
        headers={**headers, "Content-Type": "application/json", "Idempotency-Key": "big"},
    )
    assert_problem(response, 413, "request_body_too_large")
    # Under the limit all is well.
    assert test_client.post("/v1/test/problems", json={"name": "ok"}, headers=headers).status_code == 200


def test_request_ids_are_kept_when_sane_and_replaced_otherwise(client: TestClient) -> None:
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123.x:y"}).headers["x-request-id"] == "abc-123.x:y"
    for bad in ("has space", "x" * 200, "<script>", "-leading-dash"):
        echoed = client.get("/healthz", headers={"X-Request-Id": bad}).headers["x-request-id"]
        assert echoed != bad and echoed.startswith("req_")
    generated = {client.get("/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(generated) == 3
    response = client.get("/v1/api_keys", headers={"X-Request-Id": "trace-42"})
    assert response.json()["request_id"] == "trace-42"


def test_openapi_documents_problems() -> None:
    assert problems.PROBLEM_RESPONSES[404]["content"] == {"application/problem+json": {}}


def test_apps_are_built_without_side_effects(tally: Tally) -> None:
    # Many apps in one process (metrics registries, routers) must not collide.
    for _ in range(3):
        create_app(tally)
