"""Amounts, quantities, rates and dates as each locale writes them (CLDR through babel)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from tally.adapters.documents.formatting import Formats
from tally.core.money import currency, custom_unit

NBSP = "\u00a0"
NNBSP = "\u202f"  # French groups thousands with a narrow no-break space
THIN = "\u2009"  # English sets the dash of a range between thin spaces


@pytest.mark.parametrize(
    ("locale", "code", "amount", "expected"),
    [
        ("en_US", "USD", "1234.5", "$1,234.50"),
        ("en_US", "USD", "-150", "-$150.00"),
        ("de_DE", "EUR", "1234.5", f"1.234,50{NBSP}€"),
        ("fr_FR", "EUR", "1234.5", f"1{NNBSP}234,50{NBSP}€"),
        ("ja_JP", "JPY", "1235", "￥1,235"),
        ("en_IN", "INR", "1234567.5", "₹12,34,567.50"),
        ("en_US", "KWD", "1.5", "KWD1.500"),  # three decimal places: the currency's, not the locale's
        ("de_CH", "CHF", "1234.5", f"CHF{NBSP}1’234.50"),
    ],
)
def test_money_has_exactly_the_currency_places(locale: str, code: str, amount: str, expected: str) -> None:
    assert Formats(locale, currency(code)).money(Decimal(amount)) == expected


@pytest.mark.parametrize(
    ("locale", "price", "expected"),
    [
        ("en_US", "0.000002", "$0.000002"),  # a per-token price keeps every digit
        ("en_US", "12.3400", "$12.34"),  # trailing zeros beyond the currency's places go
        ("en_US", "0.5", "$0.50"),  # but never below the currency's places
        ("en_US", "100", "$100.00"),
        ("de_DE", "0.0000125", f"0,0000125{NBSP}$"),
    ],
)
def test_unit_prices_are_exact(locale: str, price: str, expected: str) -> None:
    assert Formats(locale, currency("USD")).exact_money(Decimal(price)) == expected


def test_custom_units_are_a_number_and_their_code() -> None:
    credits = custom_unit("CREDITS", 3)
    assert Formats("en_US", credits).money(Decimal("1234.5")) == f"1,234.500{NBSP}CREDITS"
    assert Formats("de_DE", credits).exact_money(Decimal("0.0001")) == f"0,0001{NBSP}CREDITS"


@pytest.mark.parametrize(
    ("locale", "quantity", "expected"),
    [("en_US", "1500000", "1,500,000"), ("de_DE", "1234567.25", "1.234.567,25"), ("en_IN", "1500000", "15,00,000")],
)
def test_quantities_are_exact_and_grouped(locale: str, quantity: str, expected: str) -> None:
    assert Formats(locale, currency("USD")).quantity(Decimal(quantity)) == expected


def test_rates_are_given_in_percent() -> None:
    assert Formats("en_US", currency("USD")).percent(Decimal("8.5")) == "8.5%"
    assert Formats("de_DE", currency("EUR")).percent(Decimal(19)) == f"19{NBSP}%"


@pytest.mark.parametrize(
    ("locale", "expected_date", "expected_period"),
    [
        ("en_US", "January 31, 2026", f"Jan 1{THIN}–{THIN}31, 2026"),
        ("de_DE", "31. Januar 2026", "1.–31. Jan. 2026"),
        ("fr_FR", "31 janvier 2026", "1–31 janv. 2026"),
        ("ja_JP", "2026年1月31日", "2026年1月1日～31日"),
    ],
)
def test_dates_and_periods(locale: str, expected_date: str, expected_period: str) -> None:
    formats = Formats(locale, currency("EUR"))
    assert formats.long_date(date(2026, 1, 31)) == expected_date
    # Periods are half-open: [Jan 1, Feb 1) is printed with its last day, Jan 31.
    assert formats.period(date(2026, 1, 1), date(2026, 2, 1)) == expected_period


def test_a_one_day_period_is_one_date() -> None:
    assert Formats("en_US", currency("USD")).period(date(2026, 1, 5), date(2026, 1, 6)) == "Jan 5, 2026"
