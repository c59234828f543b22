"""One-off charges over HTTP: create (by price code or id), read, list by status with cursors, the
upcoming invoice, the run and finalize that invoice it, the line's explanation naming the charge,
cancel (409 once invoiced or cancelled), `invoice_now`, idempotency, and refusals with their codes
(nothing written when refused)."""

from __future__ import annotations

import uuid
from typing import Any

from tally.adapters import ids
from tally.adapters.postgres.connections import psycopg_transaction
from tally.bootstrap import Tally
from tests.api.support import Headers, TestClient
from tests.invoicing_support import at, balance, customer_on_clock
from tests.subscription_support import apply_test_catalog, price_id

CATALOG = """
meters:
  - {code: api_calls, event_type: api.call, aggregation: count}
products:
  - {code: services, name: Services}
prices:
  - {code: setup, product: services, model: flat_fee, currency: USD, amount: 250, interval: null}
  - {code: hours, product: services, model: per_unit, currency: USD, unit_price: 120, billing_timing: in_advance,
     interval: null}
  - {code: monthly, product: services, model: flat_fee, currency: USD, amount: 30}
  - {code: calls, product: services, model: per_unit, currency: USD, meter: api_calls, unit_price: 0.01}
"""


def _code(response: Any) -> tuple[int, str]:
    return response.status_code, response.json().get("code")


def _customer(tally: Tally, tenant_id: uuid.UUID) -> tuple[str, str]:
    apply_test_catalog(tally, tenant_id, CATALOG)
    customer_id, _, external = customer_on_clock(tally, tenant_id, at(4, 1))
    return ids.format_id(ids.CUSTOMER, customer_id), external


def _charges(tally: Tally, tenant_id: uuid.UUID) -> int:
    with psycopg_transaction(tally.engine) as connection:
        row = connection.execute("SELECT count(*) FROM one_off_charges WHERE tenant_id = %s", (tenant_id,)).fetchone()
    assert row is not None
    return int(row[0])


def test_a_charge_is_created_listed_invoiced_explained_and_not_cancelled_after(
    client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    customer, external = _customer(tally, tenant_id)
    created = client.post(
        f"/v1/customers/{customer}/charges",
        json={"price": "hours", "quantity": "1.5", "description": "Data import"},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    charge = created.json()
    assert charge["id"].startswith("chg_") and charge["object"] == "charge"
    assert (charge["customer"], charge["price_code"], charge["quantity"], charge["currency"]) == (
        customer,
        "hours",
        "1.5",
        "USD",
    )
    assert (charge["status"], charge["invoice"], charge["charged_at"]) == ("pending", None, "2026-04-01T00:00:00Z")
    by_id = client.post(
        f"/v1/customers/{customer}/charges",
        json={"price": ids.format_id(ids.PRICE, price_id(tally, tenant_id, "setup"))},
        headers=admin_headers,
    )
    assert by_id.status_code == 201, by_id.text
    assert client.get(f"/v1/charges/{charge['id']}", headers=admin_headers).json() == charge

    # Newest first, by cursor, by status.
    page = client.get(f"/v1/customers/{customer}/charges?limit=1", headers=admin_headers).json()
    assert [item["id"] for item in page["data"]] == [by_id.json()["id"]] and page["has_more"]
    rest = client.get(
        f"/v1/customers/{customer}/charges?limit=1&starting_after={page['next_cursor']}", headers=admin_headers
    ).json()
    assert [item["id"] for item in rest["data"]] == [charge["id"]] and not rest["has_more"]

    upcoming = client.get(f"/v1/customers/{customer}/upcoming_invoice", headers=admin_headers).json()
    assert sorted(line["amount_minor"] for line in upcoming["lines"]) == [18_000, 25_000]

    run = client.post("/v1/invoices/run", json={"customer": customer}, headers=admin_headers).json()
    invoice = run["customers"][0]["invoice"]
    cancelled = client.post(f"/v1/charges/{by_id.json()['id']}/cancel", headers=admin_headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert _code(client.post(f"/v1/charges/{by_id.json()['id']}/cancel", headers=admin_headers)) == (
        409,
        "charge_is_cancelled",
    )
    finalized = client.post(f"/v1/invoices/{invoice}/finalize", headers=admin_headers).json()
    assert (finalized["status"], finalized["total_minor"]) == ("open", 18_000)
    assert balance(tally, tenant_id, "revenue.services") == 18_000
    assert balance(tally, tenant_id, "accounts_receivable", external) == 18_000

    invoiced = client.get(f"/v1/charges/{charge['id']}", headers=admin_headers).json()
    assert (invoiced["status"], invoiced["invoice"]) == ("invoiced", invoice)
    statuses = {
        status: [
            item["id"]
            for item in client.get(f"/v1/customers/{customer}/charges?status={status}", headers=admin_headers).json()[
                "data"
            ]
        ]
        for status in ("pending", "invoiced", "cancelled")
    }
    assert statuses == {"pending": [], "invoiced": [charge["id"]], "cancelled": [by_id.json()["id"]]}
    assert _code(client.post(f"/v1/charges/{charge['id']}/cancel", headers=admin_headers)) == (
        409,
        "charge_is_invoiced",
    )

    [line] = finalized["lines"]
    explained = client.get(f"/v1/invoices/{invoice}/lines/{line['id']}/explain", headers=admin_headers).json()
    assert explained["charge"]["id"] == charge["id"]
    assert (explained["charge"]["price_code"], explained["charge"]["quantity"]) == ("hours", "1.5")
    assert explained["charge"]["description"] == "Data import"
    assert explained["line"]["key"]["reference"] == str(ids.parse_id(ids.ONE_OFF_CHARGE, charge["id"]))
    assert explained["line"]["explanation"]["quantity"] == "1.5"
    assert explained["line"]["explanation"]["price"]["code"] == "hours"


def test_invoice_now_and_idempotency(
    client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    customer, _ = _customer(tally, tenant_id)
    body = {"price": "setup", "quantity": 2, "invoice_now": True, "due_in_days": 14, "idempotency_key": "setup-1"}
    created = client.post(f"/v1/customers/{customer}/charges", json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    charge = created.json()
    assert charge["status"] == "invoiced" and charge["invoice_now"]
    invoice = client.get(f"/v1/invoices/{charge['invoice']}", headers=admin_headers).json()
    assert (invoice["status"], invoice["total_minor"], invoice["due_at"]) == ("open", 50_000, "2026-04-15T00:00:00Z")

    # The same key in the body: the charge first recorded (200), even through another request key.
    replay = client.post(
        f"/v1/customers/{customer}/charges", json=body, headers={**admin_headers, "Idempotency-Key": "other"}
    )
    assert replay.status_code == 200 and replay.json()["id"] == charge["id"]
    changed = client.post(f"/v1/customers/{customer}/charges", json={**body, "quantity": 3}, headers=admin_headers)
    assert _code(changed) == (409, "exists_with_different_quantity")
    # The header key alone is the charge's key too.
    header = {**admin_headers, "Idempotency-Key": "hdr-1"}
    first = client.post(f"/v1/customers/{customer}/charges", json={"price": "setup"}, headers=header)
    again = client.post(f"/v1/customers/{customer}/charges", json={"price": "setup"}, headers=header)
    assert first.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert first.json()["idempotency_key"] == "hdr-1"
    assert _charges(tally, tenant_id) == 2


def test_bad_charges_are_refused_with_their_codes_and_nothing_written(
    client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    customer, _ = _customer(tally, tenant_id)
    path = f"/v1/customers/{customer}/charges"
    for body, expected in (
        ({"price": "nope"}, (404, "price_not_found")),
        ({"price": "price_0000000000000000000000000"}, (404, "price_not_found")),
        ({"price": "monthly"}, (422, "price_must_be_one_off")),
        ({"price": "calls"}, (422, "price_must_not_be_metered")),
        ({"price": "setup", "quantity": "0"}, (422, "charge_quantity_must_be_positive")),
        ({"price": "setup", "quantity": "-2"}, (422, "charge_quantity_must_be_positive")),
        ({"price": "setup", "quantity": "1e13"}, (422, "charge_quantity_exceeds_limit")),
        ({"price": "setup", "charged_at": "2026-04-02T00:00:00Z"}, (422, "charged_at_must_not_be_in_the_future")),
    ):
        assert _code(client.post(path, json=body, headers=admin_headers)) == expected, body
    assert client.post(path, json={"price": "setup", "quantity": "lots"}, headers=admin_headers).status_code == 422
    assert client.post(path, json={"quantity": 1}, headers=admin_headers).status_code == 422
    assert _code(client.post("/v1/customers/cus_nope/charges", json={"price": "setup"}, headers=admin_headers)) == (
        404,
        "customer_not_found",
    )
    assert _code(client.get("/v1/charges/chg_nope", headers=admin_headers)) == (404, "charge_not_found")
    assert _code(client.post("/v1/charges/chg_nope/cancel", headers=admin_headers)) == (404, "charge_not_found")
    assert client.get(f"{path}?status=bogus", headers=admin_headers).status_code == 422
    assert _charges(tally, tenant_id) == 0


def test_a_quantity_keeps_every_decimal_place_a_float_would_lose(
    client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    customer, _ = _customer(tally, tenant_id)
    headers = {**admin_headers, "Content-Type": "application/json"}
    created = client.post(
        f"/v1/customers/{customer}/charges",
        content=b'{"price": "hours", "quantity": 123456789.123456789012}',  # a JSON number, not a string
        headers=headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["quantity"] == "123456789.123456789012"
    refused = client.post(
        f"/v1/customers/{customer}/charges", content=b'{"price": "hours", "quantity": NaN}', headers=headers
    )
    assert _code(refused) == (422, "value_must_be_number")
    assert _charges(tally, tenant_id) == 1
