"""Amounts, quantities, percentages and dates written the way a locale writes them (CLDR, via babel).

The number of decimal places of an amount is the currency's own (`Unit.scale`, the ledger's), not
CLDR's idea of it: where the two disagree, the document must show what is billed. Money on the
invoice is shown with exactly that many places. Unit prices and breakdown amounts are shown exactly:
at least that many places, and every further digit they have ($0.000002 stays $0.000002).

Custom units (credits) have no symbol in CLDR: they are written as a number and their code.
"""

from __future__ import annotations

from copy import copy
from datetime import date, timedelta
from decimal import Decimal

from babel import Locale
from babel.dates import format_date, format_interval
from babel.numbers import NumberPattern, format_currency, format_decimal, format_percent

from tally.core.money import COMPUTATION_CONTEXT, Unit

_NO_BREAK_SPACE = "\u00a0"
_HUNDRED = Decimal(100)


class Formats:
    """How one document writes numbers and dates: its locale and its currency."""

    def __init__(self, locale: str, unit: Unit) -> None:
        self.locale = Locale.parse(locale)
        self.unit = unit
        if unit.is_custom:
            money_pattern = self.locale.decimal_formats[None]
        else:
            money_pattern = self.locale.currency_formats["standard"]
        self._money_pattern = _with_fraction_digits(money_pattern, unit.scale)

    def money(self, amount: Decimal) -> str:
        """An amount billed, with exactly the currency's decimal places: $1,234.50, 1.234,50 €, ￥1,235."""
        return self._money(amount, exact=False)

    def exact_money(self, amount: Decimal) -> str:
        """A unit price or an unrounded step: the currency's places at least, every further digit kept."""
        return self._money(_without_trailing_zeros(amount), exact=True)

    def quantity(self, quantity: Decimal) -> str:
        """A quantity, exactly: 1,234,567 or 1.234.567,5."""
        return format_decimal(_without_trailing_zeros(quantity), locale=self.locale, decimal_quantization=False)

    def percent(self, rate_percent: Decimal) -> str:
        """A rate given in percent (19 → 19%, 7.5 → 7,5 % in German)."""
        fraction = COMPUTATION_CONTEXT.divide(rate_percent, _HUNDRED)
        return format_percent(_without_trailing_zeros(fraction), locale=self.locale, decimal_quantization=False)

    def long_date(self, value: date) -> str:
        """A date in full: January 31, 2026 · 31. Januar 2026 · 2026年1月31日."""
        return format_date(value, format="long", locale=self.locale)

    def period(self, start: date, end: date) -> str:
        """The half-open days `[start, end)`, written with the last day included: Jan 1 – 31, 2026."""
        last_day = end - timedelta(days=1)
        if last_day <= start:
            return format_date(start, format="medium", locale=self.locale)
        return format_interval(start, last_day, skeleton="yMMMd", locale=self.locale)

    def _money(self, amount: Decimal, *, exact: bool) -> str:
        if self.unit.is_custom:
            number = format_decimal(
                amount, format=self._money_pattern, locale=self.locale, decimal_quantization=not exact
            )
            return f"{number}{_NO_BREAK_SPACE}{self.unit.code}"
        return format_currency(
            amount,
            self.unit.code,
            format=self._money_pattern,
            locale=self.locale,
            currency_digits=False,
            decimal_quantization=not exact,
        )


def _with_fraction_digits(pattern: NumberPattern, digits: int) -> NumberPattern:
    adjusted = copy(pattern)
    adjusted.frac_prec = (digits, digits)
    return adjusted


def _without_trailing_zeros(value: Decimal) -> Decimal:
    """12.3400 → 12.34 and 100 stays 100 (never 1E+2), so a value shows the digits it really has."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1), context=COMPUTATION_CONTEXT)
    return value.normalize(COMPUTATION_CONTEXT)
