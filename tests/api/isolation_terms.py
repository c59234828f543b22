"""Isolation factories for coupons, redemptions, credit grants, commitments, price caps and tax rates
(see tests/api/isolation.py). Bodies of the create routes name tenant A's customer, coupon or price,
so tenant B is refused with 404.

Other resources' checks list their own objects on a first page, so these factories make few: one
customer, one usage price and one credit grant per tenant. The grant expired long ago (A's expire
answers 409, B's 404) and A's own grant request is refused for its amount after the customer is
found, so the whole check posts one ledger transaction per tenant."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.isolation import IsolationFactory
from tests.api.isolation_meters import create_meter
from tests.api.support import Headers, TestClient


def _created(client: TestClient, path: str, body: dict[str, Any], headers: Headers) -> str:
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


_cached: dict[tuple[str, str], str] = {}


def _once(kind: str, headers: Headers, make: Any) -> str:
    key = (kind, str(sorted(headers.items())))
    if key not in _cached:
        _cached[key] = make()
    return _cached[key]


def _customer(client: TestClient, headers: Headers) -> str:
    body = {"external_id": f"terms-{uuid.uuid4().hex[:12]}", "currency": "USD"}
    return _once("customer", headers, lambda: _created(client, "/v1/customers", body, headers))


def _coupon_body(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {"code": f"c-{uuid.uuid4().hex[:10]}", "percent_off": "10", "duration": "once"}


def _coupon(client: TestClient, headers: Headers) -> str:
    return _created(client, "/v1/coupons", _coupon_body(client, headers), headers)


def _redemption_body(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {"coupon": _coupon(client, headers), "customer": _customer(client, headers)}


def _grant_body(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {"customer": _customer(client, headers), "kind": "promotional", "amount_minor": 0}


def _grant(client: TestClient, headers: Headers) -> str:
    body = {
        "customer": _customer(client, headers),
        "kind": "promotional",
        "amount_minor": 1,
        "effective_at": "2020-01-01T00:00:00Z",
        "expires_at": "2020-02-01T00:00:00Z",
    }
    return _once("grant", headers, lambda: _created(client, "/v1/credit_grants", body, headers))


def _commitment_body(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {
        "customer": _customer(client, headers),
        "minimum_minor": 1000,
        "period_start": "2030-01-01T00:00:00Z",
        "period_end": "2030-02-01T00:00:00Z",
    }


def _usage_price(client: TestClient, headers: Headers) -> str:
    return _once("price", headers, lambda: _new_usage_price(client, headers))


def _new_usage_price(client: TestClient, headers: Headers) -> str:
    product = f"termprod_{uuid.uuid4().hex[:8]}"
    _created(client, "/v1/products", {"code": product}, headers)
    price = {"model": "per_unit", "currency": "USD", "unit_price": "0.01", "meter": create_meter(client, headers)}
    body = {"code": f"termprice_{uuid.uuid4().hex[:8]}", "product": product, "price": price}
    return _created(client, "/v1/prices", body, headers)


def _cap_body(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {"customer": _customer(client, headers), "price": _usage_price(client, headers), "maximum_amount": "5"}


def _tax_body(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {"customer": _customer(client, headers), "name": "VAT", "percent": "20"}


def _maker(path: str, body: Any) -> Any:
    def create(client: TestClient, headers: Headers) -> str:
        return _created(client, path, body(client, headers), headers)

    return create


FACTORIES = [
    IsolationFactory(prefix="/v1/coupons", create=_coupon, creates_via=frozenset({("POST", "/v1/coupons")})),
    IsolationFactory(
        prefix="/v1/coupon_redemptions",
        create=_maker("/v1/coupon_redemptions", _redemption_body),
        bodies={("POST", "/v1/coupon_redemptions"): _redemption_body},
    ),
    IsolationFactory(
        prefix="/v1/credit_grants",
        create=_grant,
        bodies={("POST", "/v1/credit_grants"): _grant_body},
    ),
    IsolationFactory(
        prefix="/v1/commitments",
        create=_maker("/v1/commitments", _commitment_body),
        bodies={("POST", "/v1/commitments"): _commitment_body},
    ),
    IsolationFactory(
        prefix="/v1/price_caps",
        create=_maker("/v1/price_caps", _cap_body),
        bodies={("POST", "/v1/price_caps"): _cap_body},
    ),
    IsolationFactory(
        prefix="/v1/tax_rates",
        create=_maker("/v1/tax_rates", _tax_body),
        bodies={("POST", "/v1/tax_rates"): _tax_body},
    ),
]
