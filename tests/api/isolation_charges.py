"""Isolation factories for one-off charges: /v1/customers/{id}/charges and /v1/charges (see
tests/api/isolation.py). One customer and one one-off price per tenant serve every route; a charge
is pending (A's cancel answers 200 once, then 409), so no invoice or ledger entry is made."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.isolation import IsolationFactory
from tests.api.support import Headers, TestClient

_cached: dict[tuple[str, str], str] = {}


def _once(kind: str, headers: Headers, make: Any) -> str:
    key = (kind, str(sorted(headers.items())))
    if key not in _cached:
        _cached[key] = make()
    return _cached[key]


def _created(client: TestClient, path: str, body: dict[str, Any], headers: Headers) -> str:
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _price(client: TestClient, headers: Headers) -> str:
    def make() -> str:
        product = f"chgprod_{uuid.uuid4().hex[:8]}"
        _created(client, "/v1/products", {"code": product}, headers)
        price = {"model": "flat_fee", "currency": "USD", "amount": "5", "interval": None}
        return _created(
            client,
            "/v1/prices",
            {"code": f"chgprice_{uuid.uuid4().hex[:8]}", "product": product, "price": price},
            headers,
        )

    return _once("price", headers, make)


def _customer(client: TestClient, headers: Headers) -> str:
    body = {"external_id": f"chg-{uuid.uuid4().hex[:12]}", "currency": "USD"}
    return _once("customer", headers, lambda: _created(client, "/v1/customers", body, headers))


def _charge_body(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {"price": _price(client, headers), "quantity": "2", "description": "isolation"}


def _charge(client: TestClient, headers: Headers) -> str:
    customer = _customer(client, headers)
    return _created(client, f"/v1/customers/{customer}/charges", _charge_body(client, headers), headers)


FACTORIES = [
    IsolationFactory(
        prefix="/v1/customers/{id}/charges",
        create=_customer,
        bodies={("POST", "/v1/customers/{id}/charges"): _charge_body},
    ),
    IsolationFactory(prefix="/v1/charges", create=_charge),
]
