"""Isolation factories for /v1/prices (see tests/api/isolation.py).

Stored prices are the tenant's like any object. A preview stores nothing, but it reads tenant data:
the custom unit a price is in (B previewing a price in A's custom unit is refused,
`unit_must_be_known`), and, by id, the price and the customer.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.isolation import IsolationFactory
from tests.api.isolation_catalog import create_price, create_product
from tests.api.support import Headers, TestClient


def create_unit(client: TestClient, headers: Headers) -> str:
    code = f"ISO{uuid.uuid4().hex[:8].upper()}"
    response = client.post("/v1/units", json={"code": code, "scale": 3, "name": "isolation"}, headers=headers)
    assert response.status_code == 201, response.text
    return code


def _preview_in_a_unit(client: TestClient, headers: Headers) -> dict[str, Any]:
    price = {"model": "per_unit", "currency": create_unit(client, headers), "unit_price": "0.5"}
    return {"price": price, "quantity": "3"}


def _unit_unknown(response: Any) -> bool:
    return response.status_code == 422 and response.json().get("code") == "unit_must_be_known"


def _price_of_a_product(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {
        "code": f"p_{uuid.uuid4().hex[:12]}",
        "product": create_product(client, headers),
        "price": {"model": "flat_fee", "currency": "USD", "amount": "1"},
    }


def _product_unknown(response: Any) -> bool:
    return response.status_code == 422 and response.json().get("code") == "product_must_exist"


FACTORIES = [
    IsolationFactory(
        prefix="/v1/prices",
        create=create_price,
        bodies={
            ("POST", "/v1/prices/preview"): _preview_in_a_unit,
            ("POST", "/v1/prices"): _price_of_a_product,
        },
        refused={("POST", "/v1/prices/preview"): _unit_unknown, ("POST", "/v1/prices"): _product_unknown},
    ),
]
