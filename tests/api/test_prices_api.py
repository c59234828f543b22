"""POST /v1/prices/preview: inline price specs rated over HTTP, exact amounts, precise problems."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import MakeHeaders
from tests.api.support import Headers, TestClient

GRADUATED = {
    "model": "graduated",
    "currency": "USD",
    "tiers": [
        {"up_to": 1000, "unit_price": "0"},
        {"up_to": 10000, "unit_price": "0.002", "flat_fee": "5"},
        {"unit_price": "0.001"},
    ],
}


def _preview(client: TestClient, headers: Headers, **body: Any) -> Any:
    return client.post("/v1/prices/preview", json=body, headers=headers)


def test_preview_a_graduated_price(client: TestClient, admin_headers: Headers) -> None:
    response = _preview(client, admin_headers, price=GRADUATED, quantity="15000")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["object"], body["amount"], body["amount_minor"], body["currency"]) == (
        "price_preview",
        "28",
        2800,
        "USD",
    )
    assert [(line["kind"], line["tier"], line["amount"]) for line in body["breakdown"]] == [
        ("units", 1, "0"),
        ("units", 2, "18"),
        ("tier_flat_fee", 2, "5"),
        ("units", 3, "5"),
    ]
    # The price as understood, defaults spelled out: what the catalog would store.
    assert body["price"]["tier_bounds"] == "inclusive" and body["price"]["billing_timing"] == "in_arrears"


def test_numbers_are_exact(client: TestClient, admin_headers: Headers) -> None:
    price = {"model": "per_unit", "currency": "USD", "unit_price": 0.000002}  # a JSON number, read as a decimal
    body = _preview(client, admin_headers, price=price, quantity=1234567).json()
    assert (body["amount"], body["amount_minor"]) == ("2.469134", 247)


def test_preview_with_events_a_summary_and_groups(client: TestClient, admin_headers: Headers) -> None:
    card = {"model": "percentage", "currency": "USD", "rate_percent": "2.9", "fixed_fee_per_event": "0.30"}
    events = [{"value": "100"}, {"value": "10"}, {"value": "0.5"}]
    by_event = _preview(client, admin_headers, price={**card, "per_event_minimum": "0.5"}, events=events).json()
    assert (by_event["amount"], by_event["event_count"]) == ("4.29", 3)
    summary = _preview(client, admin_headers, price=card, summary={"count": 3, "sum": "110.5"}).json()
    assert summary["amount"] == "4.1045" and summary["amount_minor"] == 410

    matrix = {
        "model": "matrix",
        "currency": "USD",
        "dimensions": ["model", "region"],
        "rates": [{"values": ["gpt", "eu"], "unit_price": "0.01"}, {"values": ["gpt", "us"], "unit_price": "0.008"}],
    }
    groups = [
        {"group": {"model": "gpt", "region": "eu"}, "quantity": "100"},
        {"group": {"model": "gpt", "region": "us"}, "quantity": "1000"},
    ]
    grouped = _preview(client, admin_headers, price=matrix, groups=groups).json()
    assert grouped["amount"] == "9"
    assert grouped["breakdown"][0]["group"] == {"model": "gpt", "region": "eu"}
    as_events = [
        {"value": "60", "group": {"model": "gpt", "region": "eu"}},
        {"value": "40", "group": {"model": "gpt", "region": "eu"}},
    ]
    assert _preview(client, admin_headers, price=matrix, events=as_events).json()["amount"] == "1"
    missing = _preview(client, admin_headers, price=matrix, groups=[{"group": {"model": "claude"}, "quantity": "1"}])
    assert (missing.status_code, missing.json()["code"]) == (422, "matrix_rate_must_exist")


def test_bad_prices_answer_problems(client: TestClient, admin_headers: Headers) -> None:
    cases = [
        ({**GRADUATED, "tiers": [{"up_to": 10}, {"up_to": 5}, {}]}, "tiers_must_be_increasing", "tiers[1].up_to"),
        ({**GRADUATED, "colour": "red"}, "price_field_unknown", "colour"),
        ({"model": "per_unit", "currency": "USD", "unit_price": "-1"}, "price_must_not_be_negative", "unit_price"),
        ({"model": "per_unit", "currency": "NOPE", "unit_price": "1"}, "unit_must_be_known", "currency"),
    ]
    for price, code, field in cases:
        response = _preview(client, admin_headers, price=price, quantity="1")
        assert response.status_code == 422, response.text
        problem = response.json()
        assert (problem["code"], problem["field"]) == (code, field)
        assert response.headers["content-type"].startswith("application/problem+json")


def test_nan_in_a_price_is_refused_by_the_price_rules(client: TestClient, admin_headers: Headers) -> None:
    body = '{"price": {"model": "per_unit", "currency": "USD", "unit_price": NaN}, "quantity": 1}'
    response = client.post(
        "/v1/prices/preview", content=body, headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert (response.status_code, response.json()["code"]) == (422, "price_must_be_finite")


def test_usage_is_given_once(client: TestClient, admin_headers: Headers) -> None:
    response = _preview(client, admin_headers, price=GRADUATED, quantity="1", summary={"count": 1, "sum": "1"})
    assert (response.status_code, response.json()["code"]) == (422, "usage_must_be_given_once")
    negative = _preview(client, admin_headers, price=GRADUATED, quantity="-1")
    assert (negative.status_code, negative.json()["code"]) == (422, "quantity_must_not_be_negative")


def test_a_custom_unit_of_the_tenant(client: TestClient, admin_headers: Headers) -> None:
    created = client.post("/v1/units", json={"code": "CREDITS", "scale": 4, "name": "Credits"}, headers=admin_headers)
    assert created.status_code in (200, 201), created.text
    price = {"model": "per_unit", "currency": "CREDITS", "unit_price": "0.00001"}
    body = _preview(client, admin_headers, price=price, quantity="15").json()
    assert (body["amount"], body["amount_minor"], body["currency"]) == ("0.00015", 2, "CREDITS")


def test_read_scope_is_enough(client: TestClient, make_headers: MakeHeaders, tenant_id: Any) -> None:
    read_only = make_headers(tenant_id, scopes=("read",))
    assert _preview(client, read_only, price=GRADUATED, quantity="1").status_code == 200
    ingest = make_headers(tenant_id, scopes=("ingest",))
    denied = _preview(client, ingest, price=GRADUATED, quantity="1")
    assert (denied.status_code, denied.json()["code"]) == (403, "api_key_scope_insufficient")
