"""Invoice documents and exports over HTTP: a stored invoice as PDF and HTML with the tenant's
seller profile and the customer's details, and invoices and lines exported as CSV, JSON, JSON Lines."""

from __future__ import annotations

import csv
import io
import json
import uuid

from tally.adapters import ids
from tally.app.advance_test_clock import advance_test_clock
from tally.bootstrap import Tally
from tests.api.conftest import MakeHeaders
from tests.api.support import Headers, TestClient
from tests.invoicing_support import at, calls, customer_on_clock, setup_catalog, subscribe


def _billed(client: TestClient, tally: Tally, tenant_id: uuid.UUID, headers: Headers) -> tuple[str, str]:
    """A finalized January invoice (the $30 fee) and the February draft (January's 3 calls and the fee)."""
    setup_catalog(tally, tenant_id)
    customer_id, clock_id, external = customer_on_clock(tally, tenant_id, at(1, 1))
    customer = ids.format_id(ids.CUSTOMER, customer_id)
    updated = client.patch(
        f"/v1/customers/{customer}",
        json={
            "name": "Globex Corporation",
            "email": "ap@globex.example",
            "billing_address": {
                "line1": "1 Main St",
                "city": "Springfield",
                "state": "OR",
                "postal_code": "97477",
                "country": "US",
            },
            "tax_ids": [{"type": "us_ein", "value": "12-3456789"}],
        },
        headers=headers,
    )
    assert updated.status_code == 200, updated.text
    subscribe(tally, tenant_id, customer_id)
    calls(tally, tenant_id, external, [at(1, 2), at(1, 3), at(1, 4)])
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(1, 10))
    january = client.get("/v1/invoices", headers=headers).json()["data"][0]["id"]
    final = client.post(f"/v1/invoices/{january}/finalize", json={"due_in_days": 14}, headers=headers)
    assert final.status_code == 200, final.text
    advance_test_clock(tally.engine, tally.clock, tenant_id, clock_id, at(2, 1))
    draft = client.get("/v1/invoices", params={"status": "draft"}, headers=headers).json()["data"][0]["id"]
    return january, draft


def test_documents_show_the_seller_the_buyer_and_the_amounts(
    client: TestClient, tally: Tally, tenant_id: uuid.UUID, make_headers: MakeHeaders
) -> None:
    headers = make_headers(tenant_id)
    january, draft = _billed(client, tally, tenant_id, headers)

    unset = client.get("/v1/account/invoice_profile", headers=headers).json()
    assert unset["configured"] is False and unset["locale"] == "en_US"
    profile = {
        "seller_name": "Acme AI Inc.",
        "email": "billing@acme.example",
        "address_lines": ["500 Market St", "San Francisco, CA 94105"],
        "tax_ids": [{"type": "us_ein", "value": "98-7654321"}],
        "notes": ["Pay by wire to account 123"],
        "footer": "Acme AI Inc. · Delaware",
    }
    put = client.put("/v1/account/invoice_profile", json=profile, headers=headers)
    assert put.status_code == 200, put.text
    assert put.json()["configured"] is True
    bad = client.put("/v1/account/invoice_profile", json={"seller_name": "X", "locale": "xx_NOPE"}, headers=headers)
    assert (bad.status_code, bad.json()["code"]) == (422, "locale_unknown")
    reader = make_headers(tenant_id, ("read",))
    assert client.put("/v1/account/invoice_profile", json=profile, headers=reader).status_code == 403

    page = client.get(f"/v1/invoices/{january}.html", headers=reader)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-disposition"] == 'attachment; filename="invoice-INV-000001.html"'
    text = page.text
    for expected in (
        "Acme AI Inc.",
        "Pay by wire to account 123",
        "Globex Corporation",
        "1 Main St",
        "Springfield, OR 97477",
        "12-3456789",
        "INV-000001",
        "$30.00",
        "Jan 1\u2009–\u200931, 2026",  # CLDR puts thin spaces around the dash
    ):
        assert expected in text, expected
    assert "Draft invoice" not in text

    pdf = client.get(f"/v1/invoices/{january}.pdf", headers=reader)
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == 'attachment; filename="invoice-INV-000001.pdf"'
    assert pdf.content.startswith(b"%PDF-")
    # The same invoice renders to the same bytes (the creation date is the issue date).
    assert client.get(f"/v1/invoices/{january}.pdf", headers=reader).content == pdf.content

    drafted = client.get(f"/v1/invoices/{draft}.html", headers=reader)
    assert drafted.status_code == 200
    assert (
        drafted.headers["content-disposition"]
        == f'attachment; filename="draft-invoice-{ids.parse_id(ids.INVOICE, draft)}.html"'
    )
    assert "Draft invoice" in drafted.text
    # January's three calls at $0.01, with their usage breakdown, and February's fee.
    assert "$0.03" in drafted.text and "$30.00" in drafted.text

    german = client.get(f"/v1/invoices/{january}.html", params={"locale": "de_DE"}, headers=reader)
    assert "30,00" in german.text and "$30.00" not in german.text
    unknown_locale = client.get(f"/v1/invoices/{january}.pdf", params={"locale": "zz"}, headers=reader)
    assert (unknown_locale.status_code, unknown_locale.json()["code"]) == (422, "locale_unknown")
    missing = client.get("/v1/invoices/in_nope.pdf", headers=reader)
    assert (missing.status_code, missing.json()["code"]) == (404, "invoice_not_found")
    # The invoice routes still read their own ids.
    assert client.get(f"/v1/invoices/{january}", headers=reader).json()["number"] == "INV-000001"


def test_exports_are_exact_stable_and_filtered(
    client: TestClient, tally: Tally, tenant_id: uuid.UUID, make_headers: MakeHeaders
) -> None:
    headers = make_headers(tenant_id, ("read",))
    january, draft = _billed(client, tally, tenant_id, make_headers(tenant_id))

    exported = client.get("/v1/invoices/export", headers=headers)
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.headers["content-disposition"] == 'attachment; filename="invoices.csv"'
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [row["invoice_id"] for row in rows] == [january, draft]
    first = rows[0]
    assert (first["number"], first["status"], first["currency"]) == ("INV-000001", "open", "USD")
    assert (first["subtotal"], first["total"], first["amount_due"], first["amount_remaining"]) == (
        "30.00",
        "30.00",
        "30.00",
        "30.00",
    )
    assert first["customer_name"] == "Globex Corporation"
    assert rows[1]["number"] == "" and rows[1]["total"] == "30.03"

    issued = client.get(
        "/v1/invoices/export",
        params={"format": "json", "from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"},
        headers=headers,
    )
    assert issued.headers["content-type"] == "application/json"
    assert [item["invoice_id"] for item in issued.json()] == [january]  # a draft has no issue time
    later = client.get(
        "/v1/invoices/export", params={"format": "json", "from": "2026-03-01T00:00:00Z"}, headers=headers
    )
    assert later.json() == []

    lines = client.get(
        "/v1/invoices/export", params={"records": "lines", "format": "jsonl", "status": "draft"}, headers=headers
    )
    assert lines.headers["content-type"] == "application/x-ndjson"
    records = [json.loads(line) for line in lines.text.splitlines()]
    assert {(item["kind"], item["amount"], item["quantity"]) for item in records} == {
        ("fixed_fee", "30.00", "1"),
        ("usage", "0.03", "3"),
    }
    assert all(item["invoice_id"] == draft and item["invoice_status"] == "draft" for item in records)
    assert list(records[0]) == [
        "invoice_id",
        "invoice_number",
        "invoice_status",
        "line_id",
        "position",
        "customer_id",
        "customer_external_id",
        "currency",
        "kind",
        "product",
        "description",
        "subscription_id",
        "price_id",
        "service_start",
        "service_end",
        "group",
        "reference",
        "sequence",
        "quantity",
        "unit_amount",
        "amount",
        "amount_total",
        "amount_billed_prior",
        "provisional",
        "issued_at",
    ]

    refused = client.get("/v1/invoices/export", params={"status": "lost"}, headers=headers)
    assert (refused.status_code, refused.json()["code"]) == (422, "invoice_status_unknown")
    empty = client.get(
        "/v1/invoices/export", params={"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, headers=headers
    )
    assert (empty.status_code, empty.json()["code"]) == (422, "export_range_must_not_be_empty")
