"""Relabeling the catalog over HTTP: PATCH products, features and plans (name, description,
metadata), with stable codes for what never changes there."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.api.conftest import MakeHeaders
from tests.api.support import Headers, TestClient


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def _problem(response: Any) -> tuple[int, str, str | None]:
    body = response.json()
    return response.status_code, body["code"], body["field"]


def _catalog(client: TestClient, headers: Headers) -> str:
    """A product, a feature and a plan with a published version 1; the price's id."""
    _ok(client.post("/v1/products", json={"code": "api", "name": "API"}, headers=headers), 201)
    _ok(client.post("/v1/features", json={"code": "sso", "kind": "boolean"}, headers=headers), 201)
    price = _ok(
        client.post(
            "/v1/prices",
            json={"code": "base", "product": "api", "price": {"model": "flat_fee", "currency": "USD", "amount": "10"}},
            headers=headers,
        ),
        201,
    )["id"]
    _ok(client.post("/v1/plans", json={"code": "pro", "name": "Pro"}, headers=headers), 201)
    _ok(client.post("/v1/plans/pro/versions", json={"items": [{"price": price}]}, headers=headers), 201)
    _ok(client.post("/v1/plans/pro/versions/1/publish", headers=headers))
    return str(price)


def test_labels_change_and_nothing_else_does(client: TestClient, admin_headers: Headers) -> None:
    _catalog(client, admin_headers)
    before = _ok(client.get("/v1/products/api", headers=admin_headers))
    product = _ok(
        client.patch(
            "/v1/products/api",
            json={"name": "Public API", "description": "Calls to /v2", "metadata": {"owner": "platform"}},
            headers=admin_headers,
        )
    )
    assert (product["code"], product["name"], product["description"], product["metadata"]) == (
        "api",
        "Public API",
        "Calls to /v2",
        {"owner": "platform"},
    )
    assert product["updated_at"] > before["updated_at"]
    # Only what is sent changes; metadata is replaced whole.
    renamed = _ok(client.patch("/v1/products/api", json={"metadata": {}}, headers=admin_headers))
    assert (renamed["name"], renamed["description"], renamed["metadata"]) == ("Public API", "Calls to /v2", {})
    # Sending the current values is no change: updated_at stays.
    again = _ok(client.patch("/v1/products/api", json={"name": "Public API"}, headers=admin_headers))
    assert again["updated_at"] == renamed["updated_at"]
    assert _ok(client.get("/v1/products/api", headers=admin_headers))["name"] == "Public API"

    feature = _ok(
        client.patch(
            "/v1/features/sso", json={"name": "Single sign-on", "metadata": {"tier": "2"}}, headers=admin_headers
        )
    )
    assert (feature["kind"], feature["name"], feature["metadata"]) == ("boolean", "Single sign-on", {"tier": "2"})

    plan = _ok(client.patch("/v1/plans/pro", json={"description": "For teams"}, headers=admin_headers))
    assert (plan["name"], plan["description"], plan["version"]) == ("Pro", "For teams", 1)
    # The published version is untouched: a relabel is not a new version.
    version = _ok(client.get("/v1/plans/pro/versions/1", headers=admin_headers))
    assert (version["status"], plan["latest_version"]) == ("published", 1)


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/v1/products/api", {"code": "api2"}, (422, "field_immutable", "code")),
        ("/v1/products/api", {"name": "x", "unit": "USD"}, (422, "unknown_field", "unit")),
        ("/v1/products/api", {"name": ""}, (422, "product_name_invalid", "name")),
        ("/v1/products/api", {"description": "x" * 1001}, (422, "value_too_long", "description")),
        ("/v1/products/api", {"metadata": {"k": 1}}, (422, "value_must_be_string", "metadata.k")),
        ("/v1/products/nope", {"name": "x"}, (404, "product_not_found", "product")),
        ("/v1/features/sso", {"kind": "limit"}, (422, "field_immutable", "kind")),
        ("/v1/features/sso", {"code": "sso2", "kind": "limit"}, (422, "field_immutable", "code")),
        ("/v1/features/sso", {"description": "x"}, (422, "feature_description_not_supported", "description")),
        ("/v1/features/nope", {"name": "x"}, (404, "feature_not_found", "feature")),
        ("/v1/plans/pro", {"items": []}, (422, "field_immutable", "items")),
        ("/v1/plans/pro", {"trial_days": 7}, (422, "field_immutable", "trial_days")),
        ("/v1/plans/pro", {"entitlements": {"sso": True}}, (422, "field_immutable", "entitlements")),
        ("/v1/plans/pro", {"version": 2}, (422, "field_immutable", "version")),
        ("/v1/plans/nope", {"name": "x"}, (404, "plan_not_found", "plan")),
    ],
)
def test_refusals(
    client: TestClient, admin_headers: Headers, path: str, body: dict[str, Any], expected: tuple[int, str, str]
) -> None:
    _catalog(client, admin_headers)
    assert _problem(client.patch(path, json=body, headers=admin_headers)) == expected


def test_a_price_has_no_label_route_and_a_read_key_cannot_relabel(
    client: TestClient, admin_headers: Headers, make_headers: MakeHeaders, tenant_id: uuid.UUID
) -> None:
    price = _catalog(client, admin_headers)
    read_headers = make_headers(tenant_id, ("read",))
    # A price's terms never change; there is no PATCH for prices at all.
    assert client.patch(f"/v1/prices/{price}", json={"metadata": {}}, headers=admin_headers).status_code == 405
    assert _problem(client.patch("/v1/products/api", json={"name": "x"}, headers=read_headers))[:2] == (
        403,
        "api_key_scope_insufficient",
    )
