"""Deleting catalog objects over HTTP: a product, feature or plan goes only while nothing refers to
it; anything in use answers 409 `<kind>_in_use` and stays exactly as it was."""

from __future__ import annotations

import uuid
from typing import Any

from tally.adapters.postgres import catalog as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.bootstrap import Tally
from tests.api.conftest import MakeHeaders
from tests.api.support import Headers, TestClient


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def _code_of(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


def _price(client: TestClient, headers: Headers, product: str, code: str = "base") -> str:
    body = {"code": code, "product": product, "price": {"model": "flat_fee", "currency": "USD", "amount": "10"}}
    return str(_ok(client.post("/v1/prices", json=body, headers=headers), 201)["id"])


def test_an_unused_product_is_deleted_and_its_code_is_free_again(client: TestClient, admin_headers: Headers) -> None:
    created = _ok(client.post("/v1/products", json={"code": "api", "name": "API"}, headers=admin_headers), 201)
    deleted = _ok(client.delete("/v1/products/api", headers=admin_headers))
    assert (deleted["id"], deleted["code"], deleted["deleted"]) == (created["id"], "api", True)
    assert _code_of(client.get("/v1/products/api", headers=admin_headers)) == (404, "product_not_found")
    assert _code_of(client.delete("/v1/products/api", headers=admin_headers)) == (404, "product_not_found")
    again = _ok(client.post("/v1/products", json={"code": "api"}, headers=admin_headers), 201)
    assert again["id"] != created["id"] and again["deleted"] is None


def test_a_product_with_a_price_is_in_use_even_once_the_price_is_archived(
    client: TestClient, admin_headers: Headers
) -> None:
    _ok(client.post("/v1/products", json={"code": "api"}, headers=admin_headers), 201)
    price = _price(client, admin_headers, "api")
    assert _code_of(client.delete("/v1/products/api", headers=admin_headers)) == (409, "product_in_use")
    _ok(client.post(f"/v1/prices/{price}/archive", headers=admin_headers))
    assert _code_of(client.delete("/v1/products/api", headers=admin_headers)) == (409, "product_in_use")
    assert _ok(client.get(f"/v1/prices/{price}", headers=admin_headers))["product"] == "api"
    _ok(client.get("/v1/products/api", headers=admin_headers))


def test_a_feature_granted_by_a_draft_is_in_use_until_the_draft_drops_it(
    client: TestClient, admin_headers: Headers
) -> None:
    _ok(client.post("/v1/features", json={"code": "sso", "kind": "boolean"}, headers=admin_headers), 201)
    _ok(client.post("/v1/features", json={"code": "seats", "kind": "limit"}, headers=admin_headers), 201)
    _ok(client.post("/v1/products", json={"code": "api"}, headers=admin_headers), 201)
    price = _price(client, admin_headers, "api")
    _ok(client.post("/v1/plans", json={"code": "pro"}, headers=admin_headers), 201)
    version = {"items": [{"price": price}], "entitlements": {"sso": True, "seats": 5}}
    _ok(client.post("/v1/plans/pro/versions", json=version, headers=admin_headers), 201)
    assert _code_of(client.delete("/v1/features/sso", headers=admin_headers)) == (409, "feature_in_use")
    _ok(client.patch("/v1/plans/pro/versions/1", json={"entitlements": {"seats": 5}}, headers=admin_headers))
    assert _ok(client.delete("/v1/features/sso", headers=admin_headers))["deleted"] is True
    # Published, a version grants its features forever.
    _ok(client.post("/v1/plans/pro/versions/1/publish", headers=admin_headers))
    assert _code_of(client.delete("/v1/features/seats", headers=admin_headers)) == (409, "feature_in_use")
    # A draft cannot grant a feature that is gone.
    refused = client.post("/v1/plans/pro/versions", json={"entitlements": {"sso": True}}, headers=admin_headers)
    assert refused.status_code == 422, refused.text


def test_a_plan_never_published_is_deleted_with_its_draft_and_a_published_one_is_in_use(
    client: TestClient, admin_headers: Headers
) -> None:
    _ok(client.post("/v1/products", json={"code": "api"}, headers=admin_headers), 201)
    price = _price(client, admin_headers, "api")
    _ok(client.post("/v1/plans", json={"code": "draft_only"}, headers=admin_headers), 201)
    _ok(client.post("/v1/plans/draft_only/versions", json={"items": [{"price": price}]}, headers=admin_headers), 201)
    deleted = _ok(client.delete("/v1/plans/draft_only", headers=admin_headers))
    assert (deleted["deleted"], deleted["draft_version"], deleted["version"]) == (True, 1, None)
    assert _code_of(client.get("/v1/plans/draft_only", headers=admin_headers)) == (404, "plan_not_found")
    # The price the draft held is untouched.
    assert _ok(client.get(f"/v1/prices/{price}", headers=admin_headers))["archived_at"] is None

    _ok(client.post("/v1/plans", json={"code": "pro"}, headers=admin_headers), 201)
    _ok(client.post("/v1/plans/pro/versions", json={"items": [{"price": price}]}, headers=admin_headers), 201)
    _ok(client.post("/v1/plans/pro/versions/1/publish", headers=admin_headers))
    assert _code_of(client.delete("/v1/plans/pro", headers=admin_headers)) == (409, "plan_in_use")
    # A draft of version 2 does not make a published plan deletable either.
    _ok(client.post("/v1/plans/pro/versions", json={"trial_days": 3}, headers=admin_headers), 201)
    assert _code_of(client.delete("/v1/plans/pro", headers=admin_headers)) == (409, "plan_in_use")
    assert _ok(client.get("/v1/plans/pro/versions/1", headers=admin_headers))["status"] == "published"
    # The product of a price held by a plan version is in use too.
    assert _code_of(client.delete("/v1/products/api", headers=admin_headers)) == (409, "product_in_use")


def test_deleting_needs_the_admin_scope(
    client: TestClient, admin_headers: Headers, make_headers: MakeHeaders, tenant_id: uuid.UUID
) -> None:
    _ok(client.post("/v1/products", json={"code": "api"}, headers=admin_headers), 201)
    reader = make_headers(tenant_id, ("read",))
    assert client.delete("/v1/products/api", headers=reader).status_code == 403
    _ok(client.get("/v1/products/api", headers=admin_headers))


def test_the_database_refuses_a_product_delete_a_price_refers_to(
    client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    # The foreign key behind the check: a price recorded between the check and the delete.
    _ok(client.post("/v1/products", json={"code": "api"}, headers=admin_headers), 201)
    _price(client, admin_headers, "api")
    with psycopg_transaction(tally.engine) as connection:
        product = store.get_product(connection, tenant_id, "api")
        assert product is not None
        assert store.delete_product(connection, product.id) is False
        # The savepoint kept the transaction usable, and nothing was deleted.
        assert store.get_product(connection, tenant_id, "api") is not None
