"""/v1/meters over HTTP: create (idempotent on the code), read, update into versions, exact numbers."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.conftest import MakeHeaders
from tests.api.support import Headers, TestClient

TOKENS = {"code": "tokens", "event_type": "llm.call", "aggregation": "sum", "value_property": "tokens"}


def _create(client: TestClient, headers: Headers, **fields: Any) -> Any:
    return client.post("/v1/meters", json={**TOKENS, **fields}, headers=headers)


def test_create_get_list(client: TestClient, admin_headers: Headers) -> None:
    created = _create(client, admin_headers, group_by=["model"], metadata={"team": "ai"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"].startswith("mtr_")
    assert {
        key: body[key] for key in ("object", "code", "name", "version", "aggregation", "group_by", "rollup_state")
    } == {
        "object": "meter",
        "code": "tokens",
        "name": "tokens",
        "version": 1,
        "aggregation": "sum",
        "group_by": ["model"],
        "rollup_state": "backfilling",
    }
    assert _create(client, admin_headers, group_by=["model"], metadata={"team": "ai"}).status_code == 200
    conflict = _create(client, admin_headers, aggregation="max", group_by=["model"])
    assert (conflict.status_code, conflict.json()["code"]) == (409, "meter_exists_with_different_aggregation")
    assert client.get("/v1/meters/tokens", headers=admin_headers).json()["id"] == body["id"]
    listed = client.get("/v1/meters", headers=admin_headers).json()
    assert [meter["code"] for meter in listed["data"]] == ["tokens"]
    missing = client.get("/v1/meters/nope", headers=admin_headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "meter_not_found")


def test_filter_numbers_are_exact_and_typed(client: TestClient, admin_headers: Headers) -> None:
    body = (
        '{"code": "exact", "event_type": "e", "aggregation": "count", "filters": ['
        '{"property": "p", "operator": "equals", "value": 12345678901234567890.123456789},'
        '{"property": "q", "operator": "in", "value": [0.1, 0.30000000000000004]},'
        '{"property": "r", "operator": "equals", "value": "0.1"},'
        '{"property": "s", "operator": "gt", "value": "5", "value_type": "number"}]}'
    )
    created = client.post("/v1/meters", content=body, headers={**admin_headers, "Content-Type": "application/json"})
    assert created.status_code == 201, created.text
    assert created.json()["filters"] == [
        {"property": "p", "operator": "equals", "value": "12345678901234567890.123456789", "value_type": "number"},
        {"property": "q", "operator": "in", "value": ["0.1", "0.30000000000000004"], "value_type": "number"},
        {"property": "r", "operator": "equals", "value": "0.1", "value_type": "string"},
        {"property": "s", "operator": "gt", "value": "5", "value_type": "number"},
    ]
    # Sending the filters back as they were answered changes nothing: no new version.
    again = client.patch("/v1/meters/exact", json={"filters": created.json()["filters"]}, headers=admin_headers)
    assert (again.status_code, again.json()["version"], again.json()["version_created"]) == (200, 1, False)


def test_updates_make_versions(client: TestClient, admin_headers: Headers) -> None:
    _create(client, admin_headers)
    renamed = client.patch("/v1/meters/tokens", json={"name": "LLM tokens"}, headers=admin_headers).json()
    assert (renamed["name"], renamed["version"], renamed["version_created"]) == ("LLM tokens", 1, False)
    regrouped = client.post("/v1/meters/tokens", json={"group_by": ["model"]}, headers=admin_headers).json()
    assert (regrouped["version"], regrouped["version_created"], regrouped["changed_fields"]) == (2, True, ["group_by"])
    counted = client.patch(
        "/v1/meters/tokens", json={"aggregation": "count", "value_property": None}, headers=admin_headers
    ).json()
    assert (counted["version"], counted["aggregation"], counted["value_property"]) == (3, "count", None)
    versions = client.get("/v1/meters/tokens/versions", headers=admin_headers).json()["data"]
    assert [(version["version"], version["aggregation"], version["group_by"]) for version in versions] == [
        (1, "sum", []),
        (2, "sum", ["model"]),
        (3, "count", ["model"]),
    ]
    refused = client.patch("/v1/meters/tokens", json={"aggregation": "max"}, headers=admin_headers)
    assert (refused.status_code, refused.json()["code"], refused.json()["field"]) == (
        422,
        "value_property_required",
        "value_property",
    )


def test_validation_codes(client: TestClient, admin_headers: Headers) -> None:
    for fields, code, field in (
        ({"code": "Tokens"}, "meter_code_invalid", "code"),
        ({"aggregation": "median"}, "value_not_allowed", "aggregation"),
        ({"filters": [{"property": "m", "operator": "in", "value": []}]}, "filter_value_invalid", "filters[0].value"),
        ({"group_by": ["a", "b", "c", "d", "e", "f"]}, "group_by_exceeds_limit", "group_by"),
        ({"surprise": 1}, "unknown_field", "surprise"),
    ):
        answer = _create(client, admin_headers, **fields)
        assert (answer.status_code, answer.json()["code"], answer.json()["field"]) == (422, code, field), fields


def test_scopes(client: TestClient, make_headers: MakeHeaders, tenant_id: uuid.UUID) -> None:
    reader = make_headers(tenant_id, scopes=("read",))
    assert _create(client, reader).status_code == 403
    assert client.get("/v1/meters", headers=reader).status_code == 200
    assert client.post("/v1/meters", json=TOKENS).status_code == 401
