"""Isolation factories for /v1/invoices and /v1/customers/{id}/upcoming_invoice (see tests/api/isolation.py).

An invoice is made the way a client makes one: a customer subscribed to a flat fee (billed in
advance, so due at once), then `POST /v1/invoices/run` for that customer. The fee is free, so A's
own finalize moves no money, and one product and price per tenant serve every invoice: the check
must not push other resources' objects (products, ledger entries) off the first page of their lists.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.isolation import IsolationFactory
from tests.api.support import Headers, TestClient

_prices: dict[str, str] = {}
_invoices: dict[str, str] = {}


def _tenant(headers: Headers) -> str:
    return str(sorted(headers.items()))


def _free_price(client: TestClient, headers: Headers) -> str:
    tenant = _tenant(headers)
    if tenant not in _prices:
        product = f"invprod_{uuid.uuid4().hex[:8]}"
        response = client.post("/v1/products", json={"code": product}, headers=headers)
        assert response.status_code == 201, response.text
        body = {
            "code": f"invprice_{uuid.uuid4().hex[:8]}",
            "product": product,
            "price": {"model": "flat_fee", "currency": "USD", "amount": "0"},
        }
        response = client.post("/v1/prices", json=body, headers=headers)
        assert response.status_code == 201, response.text
        _prices[tenant] = str(response.json()["id"])
    return _prices[tenant]


def _billed_customer(client: TestClient, headers: Headers) -> str:
    response = client.post(
        "/v1/customers", json={"external_id": f"inv-{uuid.uuid4().hex[:12]}", "currency": "USD"}, headers=headers
    )
    assert response.status_code == 201, response.text
    customer = str(response.json()["id"])
    body = {"customer": customer, "prices": [{"price": _free_price(client, headers)}]}
    response = client.post("/v1/subscriptions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return customer


def create_invoice(client: TestClient, headers: Headers) -> str:
    """One draft per tenant serves every route."""
    tenant = _tenant(headers)
    if tenant not in _invoices:
        customer = _billed_customer(client, headers)
        response = client.post("/v1/invoices/run", json={"customer": customer}, headers=headers)
        assert response.status_code == 200, response.text
        invoice = response.json()["customers"][0]["invoice"]
        assert invoice is not None, response.text
        _invoices[tenant] = str(invoice)
    return _invoices[tenant]


def _invoice_and_line(client: TestClient, headers: Headers) -> str:
    invoice = create_invoice(client, headers)
    response = client.get(f"/v1/invoices/{invoice}", headers=headers)
    assert response.status_code == 200, response.text
    return f"{invoice}|{response.json()['lines'][0]['id']}"


def _run_body(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {"customer": _billed_customer(client, headers)}


FACTORIES = [
    IsolationFactory(
        prefix="/v1/invoices",
        create=create_invoice,
        bodies={
            ("POST", "/v1/invoices/run"): _run_body,
            # Whatever A's invoice's status by then, A is refused 409/422 (its invoice is found), B 404.
            ("POST", "/v1/invoices/{id}/pay"): lambda client, headers: {"amount_minor": 100},
            ("POST", "/v1/invoices/{id}/credit_notes"): lambda client, headers: {"amount_minor": 1, "reason": "other"},
        },
    ),
    IsolationFactory(
        prefix="/v1/invoices/{id}/lines",
        create=_invoice_and_line,
        path_params={
            ("GET", "/v1/invoices/{id}/lines/{line_id}/explain"): lambda pair: {
                "id": pair.split("|")[0],
                "line_id": pair.split("|")[1],
            },
            # A's line is a fee: A is refused 409 `invoice_line_has_no_usage` (its line is found), B 404.
            ("GET", "/v1/invoices/{id}/lines/{line_id}/events"): lambda pair: {
                "id": pair.split("|")[0],
                "line_id": pair.split("|")[1],
            },
        },
    ),
]
