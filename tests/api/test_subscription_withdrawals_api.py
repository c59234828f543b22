"""Scheduled changes over HTTP: listing them, withdrawing one, the refusals, and a cancel that
supersedes the changes dated after its end."""

from __future__ import annotations

import uuid
from typing import Any

from tally.bootstrap import Tally
from tests.api.support import Headers, TestClient
from tests.subscription_support import apply_test_catalog


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def _problem(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


def _subscription(client: TestClient, headers: Headers) -> tuple[str, str]:
    """A customer on a test clock (Mar 10) with a `basic` subscription; returns (clock, subscription)."""
    clock = _ok(client.post("/v1/test_clocks", json={"frozen_time": "2026-03-10T12:00:00Z"}, headers=headers), 201)
    body = {"external_id": f"c-{uuid.uuid4().hex[:10]}", "currency": "USD", "test_clock": clock["id"]}
    customer = _ok(client.post("/v1/customers", json=body, headers=headers), 201)["id"]
    created = _ok(client.post("/v1/subscriptions", json={"customer": customer, "plan": "basic"}, headers=headers), 201)
    return clock["id"], created["id"]


def _scheduled(client: TestClient, headers: Headers, sid: str) -> list[tuple[int, str, str]]:
    found = _ok(client.get(f"/v1/subscriptions/{sid}/scheduled_changes", headers=headers))
    return [(change["sequence"], change["kind"], change["effective_at"]) for change in found["changes"]]


def test_withdrawing_a_downgrade_scheduled_at_period_end(
    client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    apply_test_catalog(tally, tenant_id)
    _, sid = _subscription(client, admin_headers)
    assert _scheduled(client, admin_headers, sid) == []
    change = _ok(
        client.post(
            f"/v1/subscriptions/{sid}/change", json={"plan": "pro", "effective": "period_end"}, headers=admin_headers
        )
    )
    assert [(fact["sequence"], fact["kind"]) for fact in change["recorded"]] == [(1, "items_changed")]
    assert _scheduled(client, admin_headers, sid) == [(1, "items_changed", "2026-04-10T12:00:00Z")]

    withdrawn = _ok(client.post(f"/v1/subscriptions/{sid}/scheduled_changes/1/withdraw", headers=admin_headers))
    assert [(fact["sequence"], fact["kind"], fact["withdraws"]) for fact in withdrawn["recorded"]] == [
        (2, "withdrawn", 1)
    ]
    assert _scheduled(client, admin_headers, sid) == []
    # Past the period end the subscription is still on basic: the downgrade never happened.
    later = _ok(client.get(f"/v1/subscriptions/{sid}?as_of=2026-04-20T00:00:00Z", headers=admin_headers))
    assert [item["price_code"] for item in later["items"]] == ["basic_monthly", "tokens"]
    # Both facts stay on the timeline, each pointing at the other.
    entries = _ok(client.get(f"/v1/subscriptions/{sid}/timeline", headers=admin_headers))["entries"]
    assert [(e["sequence"], e["kind"], e["withdraws"], e["withdrawn_by"]) for e in entries] == [
        (0, "started", None, None),
        (1, "items_changed", None, 2),
        (2, "withdrawn", 1, None),
    ]
    assert _problem(client.post(f"/v1/subscriptions/{sid}/scheduled_changes/1/withdraw", headers=admin_headers)) == (
        409,
        "change_already_withdrawn",
    )


def test_the_refusals_of_withdrawing(
    client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    apply_test_catalog(tally, tenant_id)
    clock, sid = _subscription(client, admin_headers)
    _ok(
        client.post(
            f"/v1/subscriptions/{sid}/change", json={"plan": "pro", "effective": "period_end"}, headers=admin_headers
        )
    )
    base = f"/v1/subscriptions/{sid}/scheduled_changes"
    cases = [
        ("0", (422, "change_not_withdrawable")),
        ("7", (404, "change_not_found")),
        ("x", (404, "change_not_found")),
        ("-1", (404, "change_not_found")),
        ("99999999999999999999", (404, "change_not_found")),
    ]
    for sequence, expected in cases:
        assert _problem(client.post(f"{base}/{sequence}/withdraw", headers=admin_headers)) == expected, sequence
    assert _problem(client.post("/v1/subscriptions/sub_nope/scheduled_changes/1/withdraw", headers=admin_headers)) == (
        404,
        "subscription_not_found",
    )
    # Once the clock passes the change, it has taken effect and may have been billed: too late.
    _ok(
        client.post(
            f"/v1/test_clocks/{clock}/advance", json={"frozen_time": "2026-04-10T12:00:00Z"}, headers=admin_headers
        )
    )
    assert _scheduled(client, admin_headers, sid) == []
    assert _problem(client.post(f"{base}/1/withdraw", headers=admin_headers)) == (409, "change_already_in_effect")


def test_a_cancel_withdraws_the_changes_after_its_end_and_says_so(
    client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    apply_test_catalog(tally, tenant_id)
    _, sid = _subscription(client, admin_headers)
    # A downgrade at the period end (Apr 10) and a phase later on (May 1).
    _ok(
        client.post(
            f"/v1/subscriptions/{sid}/change", json={"plan": "pro", "effective": "period_end"}, headers=admin_headers
        )
    )
    _ok(
        client.post(
            f"/v1/subscriptions/{sid}/change",
            json={"plan": "basic", "effective": "2026-05-01T00:00:00Z"},
            headers=admin_headers,
        )
    )
    # Cancel at period end: the change at that very moment could never take effect, nor the later one.
    canceled = _ok(
        client.post(f"/v1/subscriptions/{sid}/cancel", json={"effective": "period_end"}, headers=admin_headers)
    )
    assert [(fact["kind"], fact["withdraws"], fact["ends_at"]) for fact in canceled["recorded"]] == [
        ("withdrawn", 1, None),
        ("withdrawn", 2, None),
        ("cancel_scheduled", None, "2026-04-10T12:00:00Z"),
    ]
    assert (canceled["status"], canceled["cancel_at"]) == ("canceled", "2026-04-10T12:00:00Z")
    assert _scheduled(client, admin_headers, sid) == []
    # Undoing the cancel does not bring the withdrawn changes back.
    undone = _ok(client.post(f"/v1/subscriptions/{sid}/unschedule_cancel", headers=admin_headers))
    assert [fact["kind"] for fact in undone["recorded"]] == ["cancel_unscheduled"]
    assert _scheduled(client, admin_headers, sid) == []


def test_a_cancel_keeps_the_changes_before_its_end(
    client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    apply_test_catalog(tally, tenant_id)
    _, sid = _subscription(client, admin_headers)
    _ok(
        client.post(
            f"/v1/subscriptions/{sid}/change",
            json={"plan": "pro", "effective": "2026-03-20T00:00:00Z"},
            headers=admin_headers,
        )
    )
    canceled = _ok(
        client.post(f"/v1/subscriptions/{sid}/cancel", json={"effective": "period_end"}, headers=admin_headers)
    )
    assert [fact["kind"] for fact in canceled["recorded"]] == ["cancel_scheduled"]
    assert _scheduled(client, admin_headers, sid) == [(1, "items_changed", "2026-03-20T00:00:00Z")]
