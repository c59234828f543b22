"""`/v1/account/billing_settings` and `/v1/late_usage` over HTTP."""

from __future__ import annotations

from tests.api.isolation_late_usage import late_usage_flag
from tests.api.support import Headers, TestClient


def test_billing_settings_default_set_and_refused(client: TestClient, admin_headers: Headers) -> None:
    response = client.get("/v1/account/billing_settings", headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"object": "billing_settings", "late_usage_policy": "next_invoice", "recorded_at": None}

    refused = client.put("/v1/account/billing_settings", json={"late_usage_policy": "weekly"}, headers=admin_headers)
    assert refused.status_code == 422, refused.text
    assert (refused.json()["code"], refused.json()["field"]) == ("late_usage_policy_unknown", "late_usage_policy")
    assert client.get("/v1/account/billing_settings", headers=admin_headers).json()["recorded_at"] is None

    response = client.put("/v1/account/billing_settings", json={"late_usage_policy": "separate"}, headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["late_usage_policy"] == "separate"
    assert client.get("/v1/account/billing_settings", headers=admin_headers).json() == response.json()


def test_late_usage_lists_open_then_resolved_flags(client: TestClient, admin_headers: Headers) -> None:
    flag, customer = late_usage_flag(client, admin_headers)
    listed = client.get("/v1/late_usage", params={"status": "open", "customer": customer}, headers=admin_headers)
    assert listed.status_code == 200, listed.text
    (item,) = listed.json()["data"]
    assert (item["id"], item["object"], item["kind"], item["status"], item["resolution"]) == (
        flag,
        "late_usage",
        "late_event",
        "open",
        None,
    )
    assert flag.startswith("late_")

    run = client.post("/v1/invoices/run", json={"customer": customer}, headers=admin_headers)
    assert run.status_code == 200, run.text
    invoice = run.json()["customers"][0]["invoice"]
    # On the draft, the flag stays open; finalizing the draft resolves it.
    on_draft = client.get("/v1/late_usage", params={"status": "open", "customer": customer}, headers=admin_headers)
    assert [item["id"] for item in on_draft.json()["data"]] == [flag]
    final = client.post(f"/v1/invoices/{invoice}/finalize", json={}, headers=admin_headers)
    assert final.status_code == 200, final.text
    resolved = client.get("/v1/late_usage", params={"status": "resolved", "customer": customer}, headers=admin_headers)
    (item,) = resolved.json()["data"]
    assert (item["id"], item["status"], item["resolution"]) == (flag, "resolved", f"invoice:{invoice}")
    still_open = client.get("/v1/late_usage", params={"status": "open", "customer": customer}, headers=admin_headers)
    assert still_open.json()["data"] == []

    bad = client.get("/v1/late_usage", params={"status": "closed"}, headers=admin_headers)
    assert bad.status_code == 422, bad.text
    unknown = client.get("/v1/late_usage", params={"customer": "cus_nobody"}, headers=admin_headers)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "customer_not_found")


def test_a_separate_policy_run_names_the_extra_invoice_and_its_reason(
    client: TestClient, admin_headers: Headers
) -> None:
    response = client.put("/v1/account/billing_settings", json={"late_usage_policy": "separate"}, headers=admin_headers)
    assert response.status_code == 200, response.text
    _, customer = late_usage_flag(client, admin_headers)
    run = client.post("/v1/invoices/run", json={"customer": customer}, headers=admin_headers)
    assert run.status_code == 200, run.text
    (item,) = run.json()["customers"]
    assert item["late_invoice"] is not None and item["credit_notes"] == []
    extra = client.get(f"/v1/invoices/{item['late_invoice']}", headers=admin_headers).json()
    assert (extra["billing_reason"], extra["status"]) == ("late_usage", "draft")
    assert item["invoice"] is None  # nothing else is due: the late calls are on the extra invoice alone
    listed = client.get("/v1/invoices", params={"customer": customer}, headers=admin_headers).json()["data"]
    assert sorted(invoice["billing_reason"] for invoice in listed) == ["late_usage", "period"]
