"""The catalog over HTTP: products, features, prices, plans and versions, overrides, preview by id."""

from __future__ import annotations

import uuid
from typing import Any

from tally.app.tenants import create_tenant
from tally.bootstrap import Tally
from tests.api.conftest import MakeHeaders
from tests.api.support import Headers, TestClient


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def _problem(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    if field is not None:
        assert body["field"] == field, body


def _seed(client: TestClient, headers: Headers) -> dict[str, str]:
    _ok(
        client.post(
            "/v1/meters",
            json={"code": "tokens", "event_type": "llm", "aggregation": "sum", "value_property": "tokens"},
            headers=headers,
        ),
        201,
    )
    _ok(client.post("/v1/products", json={"code": "api", "name": "API"}, headers=headers), 201)
    _ok(client.post("/v1/features", json={"code": "seats", "kind": "limit"}, headers=headers), 201)
    base = _ok(
        client.post(
            "/v1/prices",
            json={"code": "base", "product": "api", "price": {"model": "flat_fee", "currency": "USD", "amount": 20}},
            headers=headers,
        ),
        201,
    )
    tokens = _ok(
        client.post(
            "/v1/prices",
            json={
                "code": "tokens",
                "product": "api",
                "price": {
                    "model": "graduated",
                    "currency": "USD",
                    "meter": "tokens",
                    "tiers": [{"up_to": 1000, "unit_price": "0"}, {"unit_price": "0.002"}],
                },
            },
            headers=headers,
        ),
        201,
    )
    return {"base": base["id"], "tokens": tokens["id"]}


def test_products_features_and_prices(client: TestClient, admin_headers: Headers) -> None:
    ids = _seed(client, admin_headers)
    _problem(client.post("/v1/products", json={"code": "api"}, headers=admin_headers), 409, "product_code_taken")
    _problem(
        client.post("/v1/features", json={"code": "x", "kind": "number"}, headers=admin_headers),
        422,
        "value_not_allowed",
        "kind",
    )
    assert _ok(client.get("/v1/products/api", headers=admin_headers))["name"] == "API"
    assert [item["code"] for item in _ok(client.get("/v1/features", headers=admin_headers))["data"]] == ["seats"]
    price = _ok(client.get(f"/v1/prices/{ids['tokens']}", headers=admin_headers))
    assert (price["object"], price["meter"], price["model"], price["active"]) == ("price", "tokens", "graduated", True)
    assert price["price"]["tiers"][1]["unit_price"] == "0.002"
    bad_tiers = {
        "model": "graduated",
        "currency": "USD",
        "tiers": [{"up_to": 10, "unit_price": "1"}, {"up_to": 5, "unit_price": "1"}, {"unit_price": "1"}],
    }
    _problem(
        client.post("/v1/prices", json={"code": "x", "product": "api", "price": bad_tiers}, headers=admin_headers),
        422,
        "tiers_must_be_increasing",
        "price.tiers[1].up_to",
    )
    _problem(
        client.post(
            "/v1/prices",
            json={
                "code": "x",
                "product": "api",
                "price": {"model": "per_unit", "currency": "USD", "meter": "nope", "unit_price": "1"},
            },
            headers=admin_headers,
        ),
        422,
        "meter_must_exist",
    )
    _problem(
        client.post(
            "/v1/prices",
            json={"code": "base", "product": "api", "price": {"model": "flat_fee", "currency": "USD", "amount": "30"}},
            headers=admin_headers,
        ),
        409,
        "price_code_taken",
    )
    archived = _ok(client.post(f"/v1/prices/{ids['base']}/archive", headers=admin_headers))
    assert archived["active"] is False and archived["archived_at"]
    assert [item["code"] for item in _ok(client.get("/v1/prices", headers=admin_headers))["data"]] == ["tokens"]
    listed = _ok(client.get("/v1/prices", params={"include_archived": "true", "code": "base"}, headers=admin_headers))
    assert [item["id"] for item in listed["data"]] == [ids["base"]]
    _problem(client.get("/v1/prices/price_nope", headers=admin_headers), 404, "price_not_found")


def test_plan_versions_over_http(client: TestClient, admin_headers: Headers) -> None:
    ids = _seed(client, admin_headers)
    plan = _ok(client.post("/v1/plans", json={"code": "pro", "name": "Pro"}, headers=admin_headers), 201)
    assert (plan["version"], plan["draft_version"], plan["latest_version"]) == (None, None, 0)
    draft = _ok(
        client.post(
            "/v1/plans/pro/versions",
            json={
                "items": [{"price": ids["base"], "quantity": 5}, {"price": ids["tokens"]}],
                "trial_days": 14,
                "entitlements": {"seats": 10},
            },
            headers=admin_headers,
        ),
        201,
    )
    assert (draft["version"], draft["status"], draft["id"][:4]) == (1, "draft", "plv_")
    assert [(item["code"], item["quantity"]) for item in draft["items"]] == [("base", 5), ("tokens", None)]
    _problem(
        client.patch("/v1/plans/pro/versions/1", json={"entitlements": {"seats": True}}, headers=admin_headers),
        422,
        "entitlement_must_be_limit",
        "entitlements.seats",
    )
    _problem(
        client.patch(
            "/v1/plans/pro/versions/1", json={"items": [{"price": ids["tokens"], "quantity": 2}]}, headers=admin_headers
        ),
        422,
        "plan_item_quantity_needs_a_fixed_price",
        "items[0].quantity",
    )
    edited = _ok(client.patch("/v1/plans/pro/versions/1", json={"trial_days": 30}, headers=admin_headers))
    assert (edited["trial_days"], len(edited["items"])) == (30, 2)
    published = _ok(client.post("/v1/plans/pro/versions/1/publish", headers=admin_headers))
    assert published["status"] == "published" and published["published_at"]
    _problem(
        client.patch("/v1/plans/pro/versions/1", json={"trial_days": 1}, headers=admin_headers),
        409,
        "plan_version_immutable",
    )
    assert _ok(client.get("/v1/plans/pro", headers=admin_headers))["version"] == 1
    _ok(client.post("/v1/plans/pro/versions", json={"items": [{"price": ids["base"]}]}, headers=admin_headers), 201)
    _problem(client.post("/v1/plans/pro/versions", json={}, headers=admin_headers), 409, "plan_draft_version_exists")
    versions = _ok(client.get("/v1/plans/pro/versions", headers=admin_headers))["data"]
    assert [(item["version"], item["status"]) for item in versions] == [(1, "published"), (2, "draft")]
    _problem(client.get("/v1/plans/pro/versions/9", headers=admin_headers), 404, "plan_version_not_found")


def test_preview_by_id_and_with_a_customers_override(
    client: TestClient, admin_headers: Headers, tally: Tally, make_headers: MakeHeaders
) -> None:
    ids = _seed(client, admin_headers)
    preview = _ok(
        client.post("/v1/prices/preview", json={"price_id": ids["tokens"], "quantity": "3000"}, headers=admin_headers)
    )
    assert (preview["amount"], preview["amount_minor"]) == ("4", 400)
    customer = _ok(
        client.post("/v1/customers", json={"external_id": "acme", "currency": "USD"}, headers=admin_headers), 201
    )
    euro = _ok(
        client.post("/v1/customers", json={"external_id": "euro", "currency": "EUR"}, headers=admin_headers), 201
    )
    negotiated = {"model": "per_unit", "currency": "USD", "unit_price": "0.001"}
    _problem(
        client.post(
            "/v1/price_overrides",
            json={"customer": euro["id"], "price": ids["tokens"], "override": negotiated},
            headers=admin_headers,
        ),
        422,
        "price_currency_must_match_customer",
    )
    override = _ok(
        client.post(
            "/v1/price_overrides",
            json={
                "customer": customer["id"],
                "price": ids["tokens"],
                "override": negotiated,
                "effective_from": "2020-01-01T00:00:00Z",
            },
            headers=admin_headers,
        ),
        201,
    )
    assert override["override"]["meter"] == "tokens" and override["id"].startswith("ovr_")
    _problem(
        client.post(
            "/v1/price_overrides",
            json={"customer": customer["id"], "price": ids["tokens"], "override": negotiated},
            headers=admin_headers,
        ),
        409,
        "price_override_overlaps",
    )
    by_customer = {"price_id": ids["tokens"], "customer": customer["id"], "quantity": "3000"}
    assert _ok(client.post("/v1/prices/preview", json=by_customer, headers=admin_headers))["amount"] == "3"
    before = {**by_customer, "at": "2019-06-01T00:00:00Z"}
    assert _ok(client.post("/v1/prices/preview", json=before, headers=admin_headers))["amount"] == "4"
    listed = _ok(client.get("/v1/price_overrides", params={"customer": customer["id"]}, headers=admin_headers))
    assert [item["id"] for item in listed["data"]] == [override["id"]]
    ended = _ok(client.post(f"/v1/price_overrides/{override['id']}/end", json={}, headers=admin_headers))
    assert ended["effective_until"] is not None
    assert _ok(client.post("/v1/prices/preview", json=by_customer, headers=admin_headers))["amount"] == "4"
    _problem(
        client.post(f"/v1/price_overrides/{override['id']}/end", json={}, headers=admin_headers),
        409,
        "price_override_already_ended",
    )
    _problem(
        client.post("/v1/prices/preview", json={"quantity": "1"}, headers=admin_headers),
        422,
        "price_or_price_id_required",
    )
    # Another tenant cannot preview this tenant's price.
    other = make_headers(create_tenant(tally.engine, f"other-{uuid.uuid4().hex[:6]}"))
    _problem(
        client.post("/v1/prices/preview", json={"price_id": ids["tokens"], "quantity": "1"}, headers=other),
        404,
        "price_not_found",
    )


def test_override_and_preview_times_need_an_offset(client: TestClient, admin_headers: Headers) -> None:
    ids = _seed(client, admin_headers)
    customer = _ok(
        client.post("/v1/customers", json={"external_id": "acme", "currency": "USD"}, headers=admin_headers), 201
    )
    negotiated = {"model": "per_unit", "currency": "USD", "unit_price": "0.001"}
    created = {"customer": customer["id"], "price": ids["tokens"], "override": negotiated}
    for field in ("effective_from", "effective_until"):
        _problem(
            client.post("/v1/price_overrides", json={**created, field: "2031-01-01T00:00:00"}, headers=admin_headers),
            422,
            "datetime_must_have_timezone",
            field,
        )
    override = _ok(client.post("/v1/price_overrides", json=created, headers=admin_headers), 201)
    _problem(
        client.post(
            f"/v1/price_overrides/{override['id']}/end", json={"at": "2031-01-01T00:00:00"}, headers=admin_headers
        ),
        422,
        "datetime_must_have_timezone",
        "at",
    )
    by_customer = {"price_id": ids["tokens"], "customer": customer["id"], "quantity": "1"}
    _problem(
        client.post("/v1/prices/preview", json={**by_customer, "at": "2031-01-01T00:00:00"}, headers=admin_headers),
        422,
        "datetime_must_have_timezone",
        "at",
    )
