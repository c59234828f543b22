"""Isolation factories for the catalog: /v1/products, /v1/features, /v1/plans, /v1/price_overrides
(see tests/api/isolation.py; /v1/prices is in isolation_prices.py).

`DELETE /v1/products|features|plans/{code}` are covered by the same factories: each route gets a
new object, B's delete answers 404, and A's deletes it (the plan factory's plan is a draft only, so
A's delete succeeds too, proving the route reached A's object)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.isolation import IsolationFactory
from tests.api.support import Headers, TestClient


def _code(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def create_product(client: TestClient, headers: Headers) -> str:
    code = _code("prod")
    response = client.post("/v1/products", json={"code": code}, headers=headers)
    assert response.status_code == 201, response.text
    return code


def create_feature(client: TestClient, headers: Headers) -> str:
    code = _code("feat")
    response = client.post("/v1/features", json={"code": code, "kind": "boolean"}, headers=headers)
    assert response.status_code == 201, response.text
    return code


def create_price(client: TestClient, headers: Headers) -> str:
    """A flat fee of a new product; its id."""
    body = {
        "code": _code("price"),
        "product": create_product(client, headers),
        "price": {"model": "flat_fee", "currency": "USD", "amount": "10"},
    }
    response = client.post("/v1/prices", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def create_plan(client: TestClient, headers: Headers) -> str:
    """A plan with a draft version 1 holding a price; its code."""
    code = _code("plan")
    response = client.post("/v1/plans", json={"code": code}, headers=headers)
    assert response.status_code == 201, response.text
    price = create_price(client, headers)
    response = client.post(f"/v1/plans/{code}/versions", json={"items": [{"price": price}]}, headers=headers)
    assert response.status_code == 201, response.text
    return code


def create_override(client: TestClient, headers: Headers) -> str:
    response = client.post("/v1/price_overrides", json=_override_body(client, headers), headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _override_body(client: TestClient, headers: Headers) -> dict[str, Any]:
    customer = client.post("/v1/customers", json={"external_id": _code("c"), "currency": "USD"}, headers=headers)
    assert customer.status_code == 201, customer.text
    return {
        "customer": customer.json()["id"],
        "price": create_price(client, headers),
        "override": {"model": "flat_fee", "currency": "USD", "amount": "8"},
    }


def _version(code: str) -> dict[str, str]:
    return {"code": code, "version": "1"}


def _relabel(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {"name": "Renamed", "metadata": {"team": "billing"}}


def _draft_edit(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {"trial_days": 7}


def _new_version(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {"trial_days": 3}


VERSION_ROUTES = (
    ("GET", "/v1/plans/{code}/versions/{version}"),
    ("PATCH", "/v1/plans/{code}/versions/{version}"),
    ("POST", "/v1/plans/{code}/versions/{version}"),
    ("POST", "/v1/plans/{code}/versions/{version}/publish"),
)

FACTORIES = [
    IsolationFactory(
        prefix="/v1/products",
        create=create_product,
        creates_via=frozenset({("POST", "/v1/products")}),
        # Oldest first: a full page so the newest is listed however many products other factories made.
        query={("GET", "/v1/products"): lambda _: {"limit": "100"}},
        bodies={("PATCH", "/v1/products/{code}"): _relabel},
    ),
    IsolationFactory(
        prefix="/v1/features",
        create=create_feature,
        creates_via=frozenset({("POST", "/v1/features")}),
        bodies={("PATCH", "/v1/features/{code}"): _relabel},
    ),
    IsolationFactory(
        prefix="/v1/plans",
        create=create_plan,
        creates_via=frozenset({("POST", "/v1/plans")}),
        path_params={route: _version for route in VERSION_ROUTES},
        bodies={
            ("PATCH", "/v1/plans/{code}"): _relabel,
            ("PATCH", "/v1/plans/{code}/versions/{version}"): _draft_edit,
            ("POST", "/v1/plans/{code}/versions/{version}"): _draft_edit,
            # A's plan already has a draft: A's own request answers 409, B's 404.
            ("POST", "/v1/plans/{code}/versions"): _new_version,
        },
    ),
    IsolationFactory(
        prefix="/v1/price_overrides",
        create=create_override,
        bodies={("POST", "/v1/price_overrides"): _override_body},
    ),
]
