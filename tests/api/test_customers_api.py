"""/v1/customers over HTTP: create, conflicts, look-up by external id, updates, pages, bad input codes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tally.app.tenants import create_tenant
from tally.bootstrap import Tally
from tests.api.conftest import MakeHeaders
from tests.api.support import Headers, TestClient

ACME: dict[str, Any] = {
    "external_id": "acme",
    "name": "Acme, Inc.",
    "email": "billing@acme.example",
    "currency": "USD",
    "billing_address": {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"},
    "tax_ids": [{"type": "us_ein", "value": "12-3456789"}],
    "timezone": "America/Chicago",
    "metadata": {"crm": "42"},
}


def _problem(response: Any) -> tuple[int, str, str | None]:
    body = response.json()
    return response.status_code, body["code"], body["field"]


def test_create_get_and_look_up(client: TestClient, admin_headers: Headers) -> None:
    created = client.post("/v1/customers", json=ACME, headers=admin_headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"].startswith("cus_") and body["object"] == "customer"
    assert {key: body[key] for key in ACME if key != "billing_address"} == {
        key: value for key, value in ACME.items() if key != "billing_address"
    }
    assert body["billing_address"] == {**ACME["billing_address"], "line2": None, "state": None}
    assert body["test_clock"] is None and body["created_at"] == body["updated_at"]

    assert client.get(f"/v1/customers/{body['id']}", headers=admin_headers).json() == body
    found = client.get("/v1/customers", params={"external_id": "acme"}, headers=admin_headers).json()
    assert [item["id"] for item in found["data"]] == [body["id"]] and found["has_more"] is False
    none = client.get("/v1/customers", params={"external_id": "nobody"}, headers=admin_headers).json()
    assert none["data"] == []

    taken = client.post("/v1/customers", json={"external_id": "acme"}, headers=admin_headers)
    assert _problem(taken) == (409, "customer_external_id_taken", "external_id")
    assert body["id"] in taken.json()["detail"]
    for missing in ("cus_nope", "clk_01jd3k0000000000000000000", "cus_" + "0" * 26):
        answer = client.get(f"/v1/customers/{missing}", headers=admin_headers)
        assert _problem(answer) == (404, "customer_not_found", "id")


def test_a_retried_create_with_an_idempotency_key_answers_the_same_customer(
    client: TestClient, admin_headers: Headers
) -> None:
    headers = {**admin_headers, "Idempotency-Key": f"create-{uuid.uuid4()}"}
    first = client.post("/v1/customers", json={"external_id": "retry"}, headers=headers)
    again = client.post("/v1/customers", json={"external_id": "retry"}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    different = client.post("/v1/customers", json={"external_id": "other"}, headers=headers)
    assert _problem(different)[:2] == (422, "idempotency_key_reused")


def test_update_with_post_and_patch(client: TestClient, admin_headers: Headers) -> None:
    created = client.post("/v1/customers", json={"external_id": "acme"}, headers=admin_headers).json()
    url = f"/v1/customers/{created['id']}"
    updated = client.post(
        url,
        json={"name": "Acme", "email": "a@acme.example", "currency": "EUR", "billing_address": {"country": "FR"}},
        headers=admin_headers,
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert (body["name"], body["email"], body["currency"], body["billing_address"]["country"]) == (
        "Acme",
        "a@acme.example",
        "EUR",
        "FR",
    )
    cleared = client.patch(url, json={"email": None, "billing_address": None}, headers=admin_headers).json()
    assert (cleared["email"], cleared["billing_address"], cleared["name"]) == (None, None, "Acme")
    assert _problem(client.patch(url, json={"currency": "USD"}, headers=admin_headers)) == (
        409,
        "customer_currency_immutable",
        "currency",
    )
    assert client.patch(url, json={"currency": "EUR"}, headers=admin_headers).status_code == 200
    assert _problem(client.patch(url, json={"name": None}, headers=admin_headers)) == (
        422,
        "value_must_not_be_null",
        "name",
    )
    for immutable in ({"external_id": "b"}, {"test_clock": None}):
        assert _problem(client.patch(url, json=immutable, headers=admin_headers))[:2] == (422, "unknown_field")
    missing = client.post("/v1/customers/cus_" + "0" * 26, json={"name": "x"}, headers=admin_headers)
    assert _problem(missing) == (404, "customer_not_found", "id")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"email": "nope"}, ("customer_email_invalid", "email")),
        ({"currency": "XYZ"}, ("customer_currency_unknown", "currency")),
        ({"timezone": "Europe/Atlantis"}, ("customer_timezone_unknown", "timezone")),
        ({"metadata": {f"k{n}": "v" for n in range(51)}}, ("metadata_exceeds_limit", "metadata")),
        ({"metadata": {"k": "v" * 501}}, ("metadata_value_invalid", "metadata.k")),
        (
            {"tax_ids": [{"type": "eu_vat", "value": str(n)} for n in range(11)]},
            ("customer_tax_ids_exceed_limit", "tax_ids"),
        ),
        ({"tax_ids": [{"type": "eu_vat"}]}, ("field_required", "tax_ids[0].value")),
        ({"billing_address": {"country": "Germany"}}, ("customer_address_country_invalid", "billing_address.country")),
        ({"billing_address": {"street": "x"}}, ("unknown_field", "billing_address.street")),
        ({"nickname": "x"}, ("unknown_field", "nickname")),
        ({"external_id": ""}, ("customer_external_id_invalid", "external_id")),
        ({"test_clock": "clk_nope"}, ("test_clock_not_found", "test_clock")),
        ({"name": 5}, ("value_must_be_string", "name")),
    ],
)
def test_bad_input(
    client: TestClient, admin_headers: Headers, fields: dict[str, Any], expected: tuple[str, str]
) -> None:
    response = client.post("/v1/customers", json={"external_id": "acme", **fields}, headers=admin_headers)
    code, field = expected
    assert (response.status_code, response.json()["code"], response.json()["field"]) == (
        404 if code.endswith("_not_found") else 422,
        code,
        field,
    )
    assert client.get("/v1/customers", headers=admin_headers).json()["data"] == []


def test_pages_newest_first_and_scopes(
    client: TestClient, admin_headers: Headers, make_headers: MakeHeaders, tenant_id: uuid.UUID, tally: Tally
) -> None:
    ids = [
        client.post("/v1/customers", json={"external_id": f"c{n}"}, headers=admin_headers).json()["id"]
        for n in range(3)
    ]
    first = client.get("/v1/customers", params={"limit": 2}, headers=admin_headers).json()
    assert [item["id"] for item in first["data"]] == ids[::-1][:2] and first["has_more"]
    rest = client.get(
        "/v1/customers", params={"limit": 2, "starting_after": first["next_cursor"]}, headers=admin_headers
    ).json()
    assert [item["id"] for item in rest["data"]] == ids[:1] and not rest["has_more"]

    reader = make_headers(tenant_id, scopes=("read",))
    assert client.get(f"/v1/customers/{ids[0]}", headers=reader).status_code == 200
    refused = client.post("/v1/customers", json={"external_id": "x"}, headers=reader)
    assert _problem(refused)[:2] == (403, "api_key_scope_insufficient")
    # Another tenant may use the same external id, and never sees this tenant's customer by it.
    other = make_headers(create_tenant(tally.engine, "customers-other"))
    assert client.get("/v1/customers", params={"external_id": "c0"}, headers=other).json()["data"] == []
    assert client.post("/v1/customers", json={"external_id": "c0"}, headers=other).status_code == 201
