"""Coupons, redemptions, credit grants, commitments, caps and tax rates over HTTP: what each create
answers and posts, and each refusal with its code (nothing written when refused)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.support import Headers, TestClient
from tests.invoicing_support import balance, count_rows


def _post(client: TestClient, path: str, body: dict[str, Any], headers: Headers) -> Any:
    return client.post(path, json=body, headers=headers)


def _customer(client: TestClient, headers: Headers, currency: str = "USD") -> str:
    response = _post(
        client, "/v1/customers", {"external_id": f"t-{uuid.uuid4().hex[:10]}", "currency": currency}, headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _external(client: TestClient, headers: Headers, customer: str) -> str:
    return str(client.get(f"/v1/customers/{customer}", headers=headers).json()["external_id"])


def _code(response: Any) -> tuple[int, str]:
    return response.status_code, response.json().get("code")


def test_coupons_are_created_read_archived_and_refused(client: TestClient, admin_headers: Headers) -> None:
    created = _post(
        client,
        "/v1/coupons",
        {"code": "welcome", "percent_off": "20", "duration": "repeating", "duration_periods": 2},
        admin_headers,
    )
    assert created.status_code == 201, created.text
    coupon = created.json()
    assert coupon["id"].startswith("coupon_") and coupon["percent_off"] == "20" and coupon["archived_at"] is None
    assert client.get(f"/v1/coupons/{coupon['id']}", headers=admin_headers).json()["code"] == "welcome"
    listed = client.get("/v1/coupons", headers=admin_headers).json()["data"]
    assert [item["id"] for item in listed] == [coupon["id"]]

    refusals = [
        ({"code": "welcome", "percent_off": "5", "duration": "once"}, (409, "coupon_code_taken")),
        ({"code": "Bad Code", "percent_off": "5", "duration": "once"}, (422, "coupon_code_invalid")),
        (
            {"code": "a", "percent_off": "5", "amount_off_minor": 5, "currency": "USD", "duration": "once"},
            (422, "coupon_must_be_percent_or_amount"),
        ),
        ({"code": "b", "percent_off": "101", "duration": "once"}, (422, "percent_off_out_of_range")),
        ({"code": "c", "amount_off_minor": 500, "duration": "once"}, (422, "currency_required")),
        ({"code": "d", "percent_off": "5", "duration": "repeating"}, (422, "duration_periods_required")),
        (
            {"code": "e", "percent_off": "5", "duration": "once", "duration_periods": 3},
            (422, "duration_periods_not_allowed"),
        ),
        ({"code": "f", "percent_off": "5", "duration": "once", "prices": ["price_nope"]}, (404, "price_not_found")),
    ]
    for body, expected in refusals:
        assert _code(_post(client, "/v1/coupons", body, admin_headers)) == expected, body
    assert len(client.get("/v1/coupons", headers=admin_headers).json()["data"]) == 1

    archived = client.post(f"/v1/coupons/{coupon['id']}/archive", headers=admin_headers)
    assert archived.status_code == 200 and archived.json()["archived_at"] is not None
    assert _code(client.post(f"/v1/coupons/{coupon['id']}/archive", headers=admin_headers)) == (
        409,
        "coupon_is_archived",
    )
    customer = _customer(client, admin_headers)
    redeemed = _post(client, "/v1/coupon_redemptions", {"coupon": coupon["id"], "customer": customer}, admin_headers)
    assert _code(redeemed) == (409, "coupon_is_archived")


def test_redemptions_refuse_a_coupon_in_another_currency(client: TestClient, admin_headers: Headers) -> None:
    euros = _post(
        client,
        "/v1/coupons",
        {"code": "tenoff", "amount_off_minor": 1000, "currency": "EUR", "duration": "forever"},
        admin_headers,
    ).json()
    dollars = _post(
        client,
        "/v1/coupons",
        {"code": "fiveoff", "amount_off_minor": 500, "currency": "USD", "duration": "once"},
        admin_headers,
    ).json()
    customer = _customer(client, admin_headers)
    wrong = _post(client, "/v1/coupon_redemptions", {"coupon": euros["id"], "customer": customer}, admin_headers)
    assert _code(wrong) == (422, "coupon_currency_must_match_invoice")
    right = _post(client, "/v1/coupon_redemptions", {"coupon": dollars["id"], "customer": customer}, admin_headers)
    assert right.status_code == 201, right.text
    redemption = right.json()
    assert redemption["id"].startswith("cpr_") and redemption["customer"] == customer
    found = client.get("/v1/coupon_redemptions", params={"customer": customer}, headers=admin_headers).json()["data"]
    assert [item["id"] for item in found] == [redemption["id"]]
    other = _customer(client, admin_headers)
    assert client.get("/v1/coupon_redemptions", params={"customer": other}, headers=admin_headers).json()["data"] == []
    unknown = _post(
        client,
        "/v1/coupon_redemptions",
        {"coupon": dollars["id"], "customer": customer, "subscription": "sub_nope"},
        admin_headers,
    )
    assert _code(unknown) == (404, "subscription_not_found")


def test_credit_grants_post_to_the_ledger_and_expire_once(
    client: TestClient, admin_headers: Headers, tally: Any, tenant_id: uuid.UUID
) -> None:
    customer = _customer(client, admin_headers)
    external = _external(client, admin_headers, customer)
    prepaid = _post(
        client,
        "/v1/credit_grants",
        {
            "customer": customer,
            "kind": "prepaid",
            "amount_minor": 5000,
            "priority": 2,
            "expires_at": "2099-01-01T00:00:00Z",
        },
        admin_headers,
    )
    assert prepaid.status_code == 201, prepaid.text
    grant = prepaid.json()
    assert grant["id"].startswith("cg_") and grant["remaining_minor"] == 5000 and grant["unit"] == "USD"
    assert grant["ledger_transaction"].startswith("txn_")
    promotional = _post(
        client, "/v1/credit_grants", {"customer": customer, "kind": "promotional", "amount_minor": 700}, admin_headers
    ).json()
    assert balance(tally, tenant_id, "cash") == 5000
    assert balance(tally, tenant_id, "promotions") == 700
    assert balance(tally, tenant_id, grant["ledger_account"], external) == 5000

    transactions = count_rows(tally, tenant_id, "ledger_transactions")
    refusals = [
        (
            {"expires_at": "2020-01-01T00:00:00Z", "effective_at": "2020-01-01T00:00:00Z"},
            (422, "grant_must_expire_after_it_takes_effect"),
        ),
        ({"amount_minor": 0}, (422, "grant_amount_must_be_positive")),
        ({"priority": 5000}, (422, "grant_priority_out_of_range")),
        ({"unit": "EUR"}, (422, "grant_currency_must_match_customer")),
        ({"unit": "nocredits"}, (422, "unit_must_be_known")),
        ({"scope": {"kind": "prices"}}, (422, "scope_ids_required")),
        ({"scope": {"kind": "prices", "ids": ["price_nope"]}}, (404, "price_not_found")),
        ({"customer": "cus_nope"}, (404, "customer_not_found")),
    ]
    for change, expected in refusals:
        body = {"customer": customer, "kind": "promotional", "amount_minor": 100, **change}
        assert _code(_post(client, "/v1/credit_grants", body, admin_headers)) == expected, change
    assert count_rows(tally, tenant_id, "ledger_transactions") == transactions  # nothing half-written

    expired = client.post(f"/v1/credit_grants/{promotional['id']}/expire", headers=admin_headers)
    assert expired.status_code == 200, expired.text
    assert expired.json()["remaining_minor"] == 0 and expired.json()["expired_early_at"] is not None
    assert balance(tally, tenant_id, "promotions") == 0  # the whole promotion given back
    again = client.post(f"/v1/credit_grants/{promotional['id']}/expire", headers=admin_headers)
    assert _code(again) == (409, "credit_grant_is_expired")
    assert balance(tally, tenant_id, "promotions") == 0
    listed = client.get("/v1/credit_grants", params={"customer": customer}, headers=admin_headers).json()["data"]
    assert {item["id"]: item["remaining_minor"] for item in listed} == {grant["id"]: 5000, promotional["id"]: 0}


def test_commitments_caps_and_tax_rates(client: TestClient, admin_headers: Headers) -> None:
    customer = _customer(client, admin_headers)
    period = {"period_start": "2030-01-01T00:00:00Z", "period_end": "2030-04-01T00:00:00Z"}
    created = _post(client, "/v1/commitments", {"customer": customer, "minimum_minor": 10000, **period}, admin_headers)
    assert created.status_code == 201, created.text
    assert created.json()["id"].startswith("cmt_") and created.json()["currency"] == "USD"
    backwards = {"period_start": period["period_end"], "period_end": period["period_start"]}
    assert _code(
        _post(client, "/v1/commitments", {"customer": customer, "minimum_minor": 1, **backwards}, admin_headers)
    ) == (422, "period_must_end_after_it_starts")
    assert (
        _code(_post(client, "/v1/commitments", {"customer": customer, "minimum_minor": 0, **period}, admin_headers))[0]
        == 422
    )

    product = _post(client, "/v1/products", {"code": "flat"}, admin_headers)
    assert product.status_code == 201, product.text
    fee = _post(
        client,
        "/v1/prices",
        {"code": "flatfee", "product": "flat", "price": {"model": "flat_fee", "currency": "USD", "amount": "3"}},
        admin_headers,
    ).json()
    capped = _post(
        client, "/v1/price_caps", {"customer": customer, "price": fee["id"], "maximum_amount": "5"}, admin_headers
    )
    assert _code(capped) == (422, "price_must_be_metered")

    rate = _post(client, "/v1/tax_rates", {"customer": customer, "name": "VAT", "percent": "21"}, admin_headers)
    assert rate.status_code == 201, rate.text
    assert rate.json()["id"].startswith("txr_") and rate.json()["percent"] == "21"
    assert _code(_post(client, "/v1/tax_rates", {"name": "x", "percent": "101"}, admin_headers)) == (
        422,
        "tax_percent_out_of_range",
    )
    assert _code(_post(client, "/v1/tax_rates", {"name": "x", "percent": "1", "product": "nope"}, admin_headers)) == (
        404,
        "product_not_found",
    )
    retired = client.post(f"/v1/tax_rates/{rate.json()['id']}/retire", headers=admin_headers)
    assert retired.status_code == 200 and retired.json()["retired_at"] is not None
    assert _code(client.post(f"/v1/tax_rates/{rate.json()['id']}/retire", headers=admin_headers)) == (
        409,
        "tax_rate_is_retired",
    )


def test_decimal_terms_sent_as_json_numbers_stay_exact_and_non_finite_ones_are_refused(
    client: TestClient, admin_headers: Headers
) -> None:
    headers = {**admin_headers, "Content-Type": "application/json"}
    # JSON numbers, not strings: a float would keep about 17 significant digits of these.
    coupon = client.post(
        "/v1/coupons",
        content=b'{"code": "long", "percent_off": 12.3456789012345678901, "duration": "once"}',
        headers=headers,
    )
    assert coupon.status_code == 201, coupon.text
    assert coupon.json()["percent_off"] == "12.3456789012345678901"
    rate = client.post("/v1/tax_rates", content=b'{"name": "long", "percent": 7.12345678901234567891}', headers=headers)
    assert rate.status_code == 201, rate.text
    assert rate.json()["percent"] == "7.12345678901234567891"
    coupons = client.get("/v1/coupons", headers=admin_headers).json()["data"]
    rates = client.get("/v1/tax_rates", headers=admin_headers).json()["data"]
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        body = b'{"code": "odd", "percent_off": %s, "duration": "once"}' % literal
        assert _code(client.post("/v1/coupons", content=body, headers=headers)) == (422, "value_must_be_number")
        body = b'{"name": "odd", "percent": %s}' % literal
        assert _code(client.post("/v1/tax_rates", content=body, headers=headers)) == (422, "value_must_be_number")
    assert client.get("/v1/coupons", headers=admin_headers).json()["data"] == coupons
    assert client.get("/v1/tax_rates", headers=admin_headers).json()["data"] == rates
