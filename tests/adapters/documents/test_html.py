"""The HTML invoice: locale formatting, every customer string escaped, nothing fetched or run."""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal

import pytest

from tally.adapters.documents import Party, TaxId, render_invoice_html
from tally.core.money import currency

from .support import one_line_document, sample_document

NBSP = "\u00a0"
NNBSP = "\u202f"


def test_the_sample_shows_every_part_of_the_invoice() -> None:
    page = render_invoice_html(sample_document())
    for text in (
        "Acme AI, Inc.",
        "US EIN 12-3456789",
        "Zoë Müller 株式会社",
        "JP CN 1234567890123",
        "Invoice INV-2026-0042",
        "February 1, 2026",
        "March 3, 2026",
        "Team plan",
        "Model usage",
        "Above 1,000,000",
        "$0.002",  # a tier's unit price, exact
        "$1,500.00",  # subtotal
        "-$150.00",  # the coupon
        "Sales tax (8.5%)",
        "$114.75",
        "$1,464.75",  # total
        "-$230.25",  # credits applied
        "$1,234.50 due March 3, 2026",
        "Reference: INV-2026-0042.",
    ):
        assert text in page, text
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="en-US">' in page


@pytest.mark.parametrize(
    ("locale", "code", "amount", "expected"),
    [
        ("en_US", "USD", "1234.50", "$1,234.50"),
        ("de_DE", "EUR", "1234.50", f"1.234,50{NBSP}€"),
        ("fr_FR", "EUR", "1234.50", f"1{NNBSP}234,50{NBSP}€"),
        ("ja_JP", "JPY", "1235", "￥1,235"),
        ("en_IN", "INR", "1234567.50", "₹12,34,567.50"),
    ],
)
def test_amounts_follow_the_locale(locale: str, code: str, amount: str, expected: str) -> None:
    page = render_invoice_html(one_line_document(locale=locale, unit=currency(code), amount=Decimal(amount)))
    summary = page[page.index('<table class="summary">') :]
    assert re.search(rf"Amount due</td>\s*<td class=\"num\">{re.escape(expected)}</td>", summary), expected


def test_dates_follow_the_locale() -> None:
    page = render_invoice_html(one_line_document(locale="de_DE", unit=currency("EUR"), amount=Decimal(10)))
    assert "1. Februar 2026" in page
    assert "3. März 2026" in page
    assert '<html lang="de-DE">' in page


HOSTILE = '<script>alert("x")</script>'


def test_every_customer_string_is_escaped() -> None:
    buyer = Party(
        name=HOSTILE,
        email='"><img src=x onerror=alert(1)>@example.com',
        address_lines=("<b>1 Main St</b>",),
        tax_ids=(TaxId(type="eu_vat", value="<i>DE1</i>"),),
    )
    document = sample_document(buyer=buyer, notes=(HOSTILE,), footer="</footer><script>x()</script>")
    document = replace(
        document,
        groups=tuple(replace(group, name=f"{group.name} <style>") for group in document.groups),
    )
    page = render_invoice_html(document)
    assert "<script" not in page
    assert "<img" not in page
    assert "<b>" not in page
    assert "<i>" not in page
    assert "<style>" not in page.split("</style>", 1)[1]
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;@example.com" in page


def test_the_page_is_self_contained() -> None:
    page = render_invoice_html(sample_document())
    assert not re.search(r"\b(src|href)\s*=", page)
    assert "@import" not in page
    assert "url(" not in page
    assert "Content-Security-Policy" in page
    assert "default-src 'none'" in page


def test_control_characters_do_not_reach_the_page() -> None:
    page = render_invoice_html(sample_document(buyer=Party(name="Zoë\x00 Müller\x1b")))
    assert "\x00" not in page
    assert "\x1b" not in page
    assert "Zoë  Müller" in page
