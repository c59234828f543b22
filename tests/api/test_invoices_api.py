"""/v1/invoices over HTTP: run, list, show with lines, finalize, pay, credit notes, void, refusals as
problems with the core's codes, line explanations down to usage, and the upcoming invoice."""

from __future__ import annotations

import uuid
from typing import Any

from tally.adapters import ids
from tally.adapters.postgres.billing_batches import billing_run_lock
from tally.app.advance_test_clock import advance_test_clock
from tally.bootstrap import Tally
from tests.api.conftest import MakeHeaders
from tests.api.support import TestClient
from tests.invoicing_support import at, balance, calls, count_rows, customer_on_clock, setup_catalog, subscribe


def test_an_invoice_from_run_to_paid(
    client: TestClient, tally: Tally, tenant_id: uuid.UUID, make_headers: MakeHeaders
) -> None:
    headers = make_headers(tenant_id)
    setup_catalog(tally, tenant_id)
    customer_id, clock_id, external = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, customer_id)
    calls(tally, tenant_id, external, [at(1, 2), at(1, 3)])
    customer = ids.format_id(ids.CUSTOMER, customer_id)
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(1, 10))
    assert count_rows(tally, tenant_id, "invoices") == 1  # the advance ran billing: January's fee
    drafted = client.get("/v1/invoices", headers=headers).json()["data"][0]

    upcoming = client.get(f"/v1/customers/{customer}/upcoming_invoice", headers=headers)
    assert upcoming.status_code == 200, upcoming.text
    # The fee for January and the usage of January so far (two calls, provisional).
    assert [(line["key"]["kind"], line["amount_minor"], line["provisional"]) for line in upcoming.json()["lines"]] == [
        ("fixed_fee", 3000, False),
        ("usage", 2, True),
    ]
    assert count_rows(tally, tenant_id, "invoice_lines") == 1  # the preview writes nothing

    run = client.post("/v1/invoices/run", json={"customer": customer}, headers=headers)
    assert run.status_code == 200, run.text
    invoice = run.json()["customers"][0]["invoice"]
    assert invoice == drafted["id"] and not run.json()["customers"][0]["changed"]
    again = client.post("/v1/invoices/run", json={}, headers=headers)
    assert again.status_code == 200 and not any(item["changed"] for item in again.json()["customers"])

    shown = client.get(f"/v1/invoices/{invoice}", headers=headers).json()
    assert (shown["status"], shown["number"], shown["total_minor"]) == ("draft", None, 3000)
    listed = client.get("/v1/invoices", params={"customer": customer, "status": "draft"}, headers=headers).json()
    assert [item["id"] for item in listed["data"]] == [invoice]

    refused = client.post(f"/v1/invoices/{invoice}/pay", json={"amount_minor": 100}, headers=headers)
    assert (refused.status_code, refused.json()["code"]) == (409, "invoice_must_be_finalized")

    final = client.post(f"/v1/invoices/{invoice}/finalize", json={"due_in_days": 14}, headers=headers)
    assert final.status_code == 200, final.text
    assert (final.json()["status"], final.json()["number"]) == ("open", "INV-000001")
    twice = client.post(f"/v1/invoices/{invoice}/finalize", headers=headers)
    assert (twice.status_code, twice.json()["code"]) == (409, "invoice_must_be_draft")

    too_much = client.post(
        f"/v1/invoices/{invoice}/credit_notes", json={"amount_minor": 5000, "reason": "other"}, headers=headers
    )
    assert (too_much.status_code, too_much.json()["code"]) == (422, "credit_note_exceeds_creditable_amount")
    bad_reason = client.post(
        f"/v1/invoices/{invoice}/credit_notes", json={"amount_minor": 5, "reason": "whim"}, headers=headers
    )
    assert (bad_reason.status_code, bad_reason.json()["code"]) == (422, "credit_note_reason_unknown")
    note = client.post(
        f"/v1/invoices/{invoice}/credit_notes", json={"amount_minor": 500, "reason": "billing_error"}, headers=headers
    )
    assert note.status_code == 201, note.text
    assert note.json()["invoice"]["amount_remaining_minor"] == 2500

    paid = client.post(
        f"/v1/invoices/{invoice}/pay", json={"amount_minor": 2500, "reference": "wire 7"}, headers=headers
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["invoice"]["status"] == "paid"
    assert balance(tally, tenant_id, "accounts_receivable", external) == 0
    void = client.post(f"/v1/invoices/{invoice}/void", headers=headers)
    assert (void.status_code, void.json()["code"]) == (409, "invoice_must_not_be_paid")

    # February: January's usage lands on the next draft, and explains itself down to the events.
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 1))
    drafts = client.get("/v1/invoices", params={"status": "draft"}, headers=headers).json()["data"]
    lines = client.get(f"/v1/invoices/{drafts[0]['id']}", headers=headers).json()["lines"]
    usage = next(line for line in lines if line["key"]["kind"] == "usage")
    assert (usage["amount_minor"], usage["provisional"]) == (2, False)
    explained = client.get(f"/v1/invoices/{drafts[0]['id']}/lines/{usage['id']}/explain", headers=headers)
    assert explained.status_code == 200, explained.text
    assert explained.json()["line"]["explanation"]["usage"]["meter"] == "api_calls"
    assert [(w["value"], w["event_count"]) for w in explained.json()["usage_windows"]] == [("2", 2)]


def test_unknown_and_read_only(client: TestClient, tenant_id: uuid.UUID, make_headers: MakeHeaders) -> None:
    headers = make_headers(tenant_id)
    missing = client.get("/v1/invoices/in_nope", headers=headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "invoice_not_found")
    reader = make_headers(tenant_id, ("read",))
    assert client.post("/v1/invoices/run", json={}, headers=reader).status_code == 403


def test_a_usage_line_lists_the_events_it_was_measured_from(
    client: TestClient, tally: Tally, tenant_id: uuid.UUID, make_headers: MakeHeaders
) -> None:
    headers = make_headers(tenant_id, ("read",))
    setup_catalog(tally, tenant_id)
    customer_id, clock_id, external = customer_on_clock(tally, tenant_id, at(1, 1))
    subscribe(tally, tenant_id, customer_id)
    sent = calls(tally, tenant_id, external, [at(1, 2), at(1, 3), at(1, 4), at(2, 2)])
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 1))
    invoice = client.get("/v1/invoices", params={"status": "draft"}, headers=headers).json()["data"][0]["id"]
    lines = client.get(f"/v1/invoices/{invoice}", headers=headers).json()["lines"]
    usage = next(line for line in lines if line["key"]["kind"] == "usage")
    fee = next(line for line in lines if line["key"]["kind"] == "fixed_fee")
    assert usage["quantity"] == "3"
    assert usage["explanation"]["usage"]["meter_version"] == 1

    explained = client.get(f"/v1/invoices/{invoice}/lines/{usage['id']}/explain", headers=headers).json()
    url = f"/v1/invoices/{invoice}/lines/{usage['id']}/events"
    assert (explained["meter_version"], explained["meter_version_inferred"]) == (1, False)
    assert (explained["usage_event_count"], explained["usage_events_url"]) == (3, url)
    fee_explained = client.get(f"/v1/invoices/{invoice}/lines/{fee['id']}/explain", headers=headers).json()
    assert (fee_explained["meter_version"], fee_explained["usage_event_count"], fee_explained["usage_events_url"]) == (
        None,
        None,
        None,
    )

    first = client.get(url, params={"limit": 2}, headers=headers)
    assert first.status_code == 200, first.text
    page = first.json()
    assert (page["object"], page["has_more"], page["url"], page["meter"], page["meter_version"]) == (
        "list",
        True,
        url,
        "api_calls",
        1,
    )
    assert page["meter_version_inferred"] is False
    assert [event["id"] for event in page["data"]] == sent[:2]
    assert page["data"][0] == {
        "object": "invoice_line_event",
        "id": sent[0],
        "timestamp": at(1, 2).isoformat(),
        "properties": {},
        "value": "1",
    }
    rest = client.get(url, params={"limit": 2, "starting_after": page["next_cursor"]}, headers=headers).json()
    assert [event["id"] for event in rest["data"]] == sent[2:3]  # February's call is not January's line's
    assert (rest["has_more"], rest["next_cursor"]) == (False, None)

    def refused(path: str, **params: Any) -> tuple[int, str]:
        response = client.get(path, params=params, headers=headers)
        assert response.headers["content-type"].startswith("application/problem+json"), response.text
        return response.status_code, response.json()["code"]

    assert refused(f"/v1/invoices/{invoice}/lines/{fee['id']}/events") == (409, "invoice_line_has_no_usage")
    unknown_line = ids.format_id(ids.INVOICE_LINE, uuid.uuid4())
    assert refused(f"/v1/invoices/{invoice}/lines/{unknown_line}/events") == (404, "invoice_line_not_found")
    assert refused(f"/v1/invoices/{invoice}/lines/il_nope/events") == (404, "invoice_line_not_found")
    assert refused(f"/v1/invoices/in_nope/lines/{usage['id']}/events") == (404, "invoice_not_found")
    assert refused(url, limit=0) == (422, "limit_out_of_range")
    assert refused(url, starting_after="nope") == (422, "cursor_invalid")


def test_an_overlapping_run_answers_409(
    client: TestClient, tally: Tally, tenant_id: uuid.UUID, make_headers: MakeHeaders
) -> None:
    headers = make_headers(tenant_id)
    with billing_run_lock(tally.engine, tenant_id) as held:  # a run over every customer under way
        assert held
        busy = client.post("/v1/invoices/run", json={}, headers=headers)
        assert (busy.status_code, busy.json()["code"]) == (409, "billing_run_in_progress"), busy.text
    done = client.post("/v1/invoices/run", json={}, headers=headers)
    assert (done.status_code, done.json()["customers"]) == (200, [])
