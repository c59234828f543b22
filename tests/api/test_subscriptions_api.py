"""/v1/subscriptions over HTTP: create on a plan, change, billing events, cancel and undo, codes."""

from __future__ import annotations

import uuid
from typing import Any

from tally.adapters.ids import PLAN_VERSION, PRICE, format_id
from tally.bootstrap import Tally
from tests.api.support import Headers, TestClient
from tests.subscription_support import CATALOG, apply_test_catalog, plan_version_id, price_id


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def _problem(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


def _customer_on_a_clock(client: TestClient, headers: Headers, frozen_time: str, **fields: Any) -> tuple[str, str]:
    clock = _ok(client.post("/v1/test_clocks", json={"frozen_time": frozen_time}, headers=headers), 201)["id"]
    body = {"external_id": f"c-{uuid.uuid4().hex[:10]}", "currency": "USD", "test_clock": clock, **fields}
    return clock, _ok(client.post("/v1/customers", json=body, headers=headers), 201)["id"]


def test_a_subscription_over_http(
    client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    apply_test_catalog(tally, tenant_id)
    clock, customer = _customer_on_a_clock(client, admin_headers, "2026-03-10T12:00:00Z")
    created = _ok(
        client.post(
            "/v1/subscriptions",
            json={"customer": customer, "plan": "pro", "trial_days": 0, "metadata": {"deal": "q1"}},
            headers={**admin_headers, "Idempotency-Key": "sub-1"},
        ),
        201,
    )
    sid = created["id"]
    assert sid.startswith("sub_")
    assert (created["status"], created["started_at"], created["current_period_end"]) == (
        "active",
        "2026-03-10T12:00:00Z",
        "2026-04-10T12:00:00Z",
    )
    assert [(item["price_code"], item["kind"], item["unit_amount"], item["quantity"]) for item in created["items"]] == [
        ("pro_monthly", "fixed", "90", 1),
        ("seat", "fixed", "10", 3),
        ("tokens", "usage", None, 1),
    ]
    assert created["metadata"] == {"deal": "q1"}
    # A replay with the same key answers the same subscription.
    replay = client.post(
        "/v1/subscriptions",
        json={"customer": customer, "plan": "pro", "trial_days": 0, "metadata": {"deal": "q1"}},
        headers={**admin_headers, "Idempotency-Key": "sub-1"},
    )
    assert replay.json()["id"] == sid
    seat = next(item["price"] for item in created["items"] if item["price_code"] == "seat")

    # Two more seats at the start: the change replaces the start's fee, a full period of 5 seats.
    _ok(client.post(f"/v1/subscriptions/{sid}/quantity", json={"price": seat, "quantity": 5}, headers=admin_headers))
    events = _ok(client.get(f"/v1/subscriptions/{sid}/billing_events", headers=admin_headers))
    fees = [(event["kind"], event["quantity"], event["amount_minor"]) for event in events["events"] if event["amount"]]
    assert fees == [("fixed_fee", 1, 9000), ("fixed_fee", 5, 5000)]
    assert events["next_due_at"] == "2026-04-10T12:00:00Z"

    # Half a month later, downgrade at period end and cancel at period end, then undo the cancel.
    _ok(
        client.post(
            f"/v1/test_clocks/{clock}/advance", json={"frozen_time": "2026-03-25T12:00:00Z"}, headers=admin_headers
        )
    )
    canceled = _ok(
        client.post(f"/v1/subscriptions/{sid}/cancel", json={"effective": "period_end"}, headers=admin_headers)
    )
    assert (canceled["status"], canceled["cancel_at"]) == ("canceled", "2026-04-10T12:00:00Z")
    assert _problem(
        client.post(f"/v1/subscriptions/{sid}/cancel", json={"effective": "period_end"}, headers=admin_headers)
    ) == (
        409,
        "cancel_already_scheduled",
    )
    restored = _ok(client.post(f"/v1/subscriptions/{sid}/unschedule_cancel", headers=admin_headers))
    assert restored["status"] == "active" and restored["cancel_at"] is None
    changed = _ok(
        client.post(
            f"/v1/subscriptions/{sid}/change",
            json={"plan": "basic", "effective": "period_end"},
            headers=admin_headers,
        )
    )
    assert changed["status"] == "active" and len(changed["items"]) == 3  # still pro until Apr 10
    paused = _ok(client.post(f"/v1/subscriptions/{sid}/pause", headers=admin_headers))
    assert paused["status"] == "paused"
    assert _problem(client.post(f"/v1/subscriptions/{sid}/pause", headers=admin_headers)) == (
        409,
        "subscription_already_paused",
    )
    _ok(
        client.post(
            f"/v1/subscriptions/{sid}/resume", json={"effective_at": "2026-03-28T12:00:00Z"}, headers=admin_headers
        )
    )

    timeline = _ok(client.get(f"/v1/subscriptions/{sid}/timeline", headers=admin_headers))
    assert [entry["kind"] for entry in timeline["entries"]] == [
        "started",
        "quantity_changed",
        "cancel_scheduled",
        "cancel_unscheduled",
        "items_changed",
        "paused",
        "resumed",
    ]
    assert timeline["entries"][4]["effective_at"] == "2026-04-10T12:00:00Z"
    assert timeline["entries"][4]["plan_version"] == "plv_" + timeline["entries"][4]["plan_version"][4:]

    # On Apr 10 the basic plan starts: its fee is charged for a full period; the pro fees are not.
    _ok(
        client.post(
            f"/v1/test_clocks/{clock}/advance", json={"frozen_time": "2026-04-10T12:00:00Z"}, headers=admin_headers
        )
    )
    now = _ok(client.get(f"/v1/subscriptions/{sid}", headers=admin_headers))
    assert [item["price_code"] for item in now["items"]] == ["basic_monthly", "tokens"]
    april = _ok(client.get(f"/v1/subscriptions/{sid}/billing_events", headers=admin_headers))
    due_now = [
        (event["kind"], event["amount_minor"])
        for event in april["events"]
        if event["due_at"] == "2026-04-10T12:00:00Z" and event["amount"]
    ]
    assert due_now == [("fixed_fee", 3000)]

    listed = _ok(client.get("/v1/subscriptions", params={"customer": customer}, headers=admin_headers))
    assert [item["id"] for item in listed["data"]] == [sid]
    assert (
        _ok(client.get(f"/v1/subscriptions/{sid}", params={"as_of": "2026-03-26T00:00:00Z"}, headers=admin_headers))[
            "status"
        ]
        == "paused"
    )


def test_bad_requests_answer_precise_codes(
    client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    apply_test_catalog(tally, tenant_id)
    _, customer = _customer_on_a_clock(client, admin_headers, "2026-01-01T00:00:00Z")
    eur = format_id(PRICE, price_id(tally, tenant_id, "basic_eur"))
    cases = [
        ({"customer": customer, "prices": [{"price": eur}]}, (422, "price_currency_must_match_customer")),
        ({"customer": "cus_nope", "plan": "basic"}, (404, "customer_not_found")),
        ({"customer": customer, "plan": "missing"}, (404, "plan_version_not_found")),
        ({"customer": customer}, (422, "items_or_plan_required")),
        (
            {"customer": customer, "plan": "basic", "anchor": {"kind": "day_of_month"}},
            (422, "anchor_day_of_month_out_of_range"),
        ),
        (
            {
                "customer": customer,
                "plan": "basic",
                "start_at": "2026-01-01T00:00:00Z",
                "trial_end": "2025-12-01T00:00:00Z",
            },
            (422, "trial_must_end_after_start"),
        ),
    ]
    for body, expected in cases:
        assert _problem(client.post("/v1/subscriptions", json=body, headers=admin_headers)) == expected, body
    basic = format_id(PLAN_VERSION, plan_version_id(tally, tenant_id, "basic"))
    sid = _ok(
        client.post("/v1/subscriptions", json={"customer": customer, "plan_version": basic}, headers=admin_headers), 201
    )["id"]
    assert _problem(
        client.post(
            f"/v1/subscriptions/{sid}/pause", json={"effective_at": "2025-06-01T00:00:00Z"}, headers=admin_headers
        )
    ) == (422, "change_dated_before_start")
    assert _problem(client.post(f"/v1/subscriptions/{sid}/resume", headers=admin_headers)) == (
        409,
        "subscription_not_paused",
    )
    _ok(client.post(f"/v1/subscriptions/{sid}/cancel", headers=admin_headers))
    assert _problem(client.post(f"/v1/subscriptions/{sid}/cancel", headers=admin_headers)) == (
        409,
        "change_dated_after_end",
    )
    assert _problem(client.get("/v1/subscriptions/sub_nope", headers=admin_headers)) == (404, "subscription_not_found")


def test_a_flat_fee_in_arrears_is_billed_at_the_end_of_its_period(
    client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    support = (
        "  - {code: support, product: platform, model: flat_fee, currency: USD, amount: 31,"
        " billing_timing: in_arrears}\n"
    )
    apply_test_catalog(tally, tenant_id, CATALOG.replace("plans:\n", support + "plans:\n"))
    clock, customer = _customer_on_a_clock(client, admin_headers, "2026-01-01T00:00:00Z")
    support_id = format_id(PRICE, price_id(tally, tenant_id, "support"))
    created = _ok(
        client.post(
            "/v1/subscriptions", json={"customer": customer, "prices": [{"price": support_id}]}, headers=admin_headers
        ),
        201,
    )
    sid = created["id"]
    assert [(item["kind"], item["billing_timing"]) for item in created["items"]] == [("fixed", "in_arrears")]
    assert created["next_due_at"] == "2026-02-01T00:00:00Z"
    assert _ok(client.get(f"/v1/subscriptions/{sid}/billing_events", headers=admin_headers))["events"] == []
    # Canceled on Jan 11: ten days of January are billed then, and nothing is credited.
    _ok(
        client.post(
            f"/v1/test_clocks/{clock}/advance", json={"frozen_time": "2026-01-11T00:00:00Z"}, headers=admin_headers
        )
    )
    _ok(client.post(f"/v1/subscriptions/{sid}/cancel", headers=admin_headers))
    events = _ok(client.get(f"/v1/subscriptions/{sid}/billing_events", headers=admin_headers))["events"]
    assert [
        (e["kind"], e["billing_timing"], e["service_period"]["end"], e["due_at"], e["amount_minor"]) for e in events
    ] == [("fixed_fee", "in_arrears", "2026-01-11T00:00:00Z", "2026-01-11T00:00:00Z", 1000)]


def test_billing_threshold_over_http(
    client: TestClient, admin_headers: Headers, make_headers: Any, tally: Tally, tenant_id: uuid.UUID
) -> None:
    apply_test_catalog(tally, tenant_id)
    _, customer = _customer_on_a_clock(client, admin_headers, "2026-03-10T12:00:00Z")
    body = {"customer": customer, "plan": "pro", "billing_threshold": {"amount_minor": 50_000, "currency": "USD"}}
    created = _ok(client.post("/v1/subscriptions", json=body, headers=admin_headers), 201)
    assert created["billing_threshold"] == {
        "amount_minor": 50_000,
        "currency": "USD",
        "set_at": "2026-03-10T12:00:00Z",
    }
    path = f"/v1/subscriptions/{created['id']}/billing_threshold"
    changed = _ok(client.post(path, json={"amount_minor": 70_000}, headers=admin_headers))
    assert changed["billing_threshold"]["amount_minor"] == 70_000
    assert (
        _ok(client.get(f"/v1/subscriptions/{created['id']}", headers=admin_headers))["billing_threshold"]
        == (changed["billing_threshold"])
    )
    # Bad input: precise codes, nothing recorded.
    for wrong, expected in (
        ({"amount_minor": 0}, (422, "billing_threshold_out_of_range")),
        ({"amount_minor": 10**15 + 1}, (422, "billing_threshold_out_of_range")),
        ({"amount_minor": 100, "currency": "EUR"}, (422, "billing_threshold_currency_must_match_subscription")),
        ({"amount_minor": "100"}, (422, "value_must_be_integer")),
        ({"amount_minor": 1.5}, (422, "value_must_be_integer")),
        ({"amount_minor": True}, (422, "value_must_be_integer")),
        ({"currency": "USD"}, (422, "field_required")),
        ({"amount_minor": 100, "amount": 100}, (422, "unknown_field")),
    ):
        assert _problem(client.post(path, json=wrong, headers=admin_headers)) == expected, wrong
    refused = client.post(
        "/v1/subscriptions",
        json={**body, "billing_threshold": {"amount_minor": -1}},
        headers=admin_headers,
    )
    assert _problem(refused) == (422, "billing_threshold_out_of_range")
    listed = _ok(client.get(f"/v1/subscriptions?customer={customer}", headers=admin_headers))["data"]
    assert [item["billing_threshold"]["amount_minor"] for item in listed] == [70_000]
    # Reading keys may not set it; null turns it off.
    read_only = make_headers(tenant_id, ("read",))
    assert client.post(path, json={"amount_minor": None}, headers=read_only).status_code == 403
    off = _ok(client.post(path, json={"amount_minor": None}, headers=admin_headers))
    assert off["billing_threshold"] is None
