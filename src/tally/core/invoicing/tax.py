"""Tax: a pluggable calculator, and a per-customer table of rates.

Tax is computed last among the amounts on an invoice — after discounts and credits, on what the
customer is actually charged for each line — and before the customer's balance is applied (a balance
is money already paid). A calculator receives the invoice's taxable lines and returns tax lines; it
does no I/O here: an external tax service would be called by the app, which hands the core its
answer through a calculator that only reads it.

`TaxRateTable` is the simple calculator: per customer, a default list of rates and, optionally,
rates per product (a product missing from the table takes the default). Rates do not compound: each
applies to the same taxable amount. Tax is rounded once per rate and invoice, on the sum of the lines
it applies to, so an invoice of many small lines does not gain or lose a cent per line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from tally.core.frozen import quick_init
from tally.core.invoicing.lines import LineKey, check_identifier
from tally.core.money import COMPUTATION_CONTEXT, RoundingMode, Unit, decimal_from_minor, round_to_unit
from tally.core.rejections import Rejected

RATES_PER_LINE_MAX = 10
_HUNDRED = Decimal(100)


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class TaxableLine:
    key: LineKey
    product: str
    amount_minor: int  # net of discounts and credits; negative for a correction


@dataclass(frozen=True, slots=True, kw_only=True)
class TaxRequest:
    customer_id: str
    currency: Unit
    at: datetime
    lines: tuple[TaxableLine, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TaxRate:
    rate_id: str
    name: str
    percent: Decimal  # 0 to 100
    jurisdiction: str = ""

    def __post_init__(self) -> None:
        check_identifier(self.rate_id, "tax_rate_id_invalid", "rate_id")
        if isinstance(self.percent, float):
            raise TypeError("float is never used for money; pass a Decimal")
        if not isinstance(self.percent, Decimal) or not self.percent.is_finite() or not 0 <= self.percent <= _HUNDRED:
            raise Rejected.because("tax_percent_out_of_range", "a tax rate is 0 to 100 percent", "percent")


@dataclass(frozen=True, slots=True, kw_only=True)
class TaxLine:
    """One rate's tax on an invoice: `percent` of `taxable_minor`, rounded once."""

    rate: TaxRate
    taxable_minor: int
    amount_minor: int
    lines: tuple[LineKey, ...]


class TaxCalculator(Protocol):
    def calculate(self, request: TaxRequest) -> tuple[TaxLine, ...]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerTaxRates:
    default: tuple[TaxRate, ...] = ()
    by_product: Mapping[str, tuple[TaxRate, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for rates in (self.default, *self.by_product.values()):
            if len(rates) > RATES_PER_LINE_MAX:
                raise Rejected.because(
                    "tax_rates_exceed_limit", f"at most {RATES_PER_LINE_MAX} tax rates apply to a line", "rates"
                )
            if len({rate.rate_id for rate in rates}) != len(rates):
                raise Rejected.because("tax_rates_must_be_distinct", "a tax rate appears twice", "rates")

    def rates_for(self, product: str) -> tuple[TaxRate, ...]:
        return self.by_product.get(product, self.default)


@dataclass(frozen=True, slots=True)
class TaxRateTable:
    """Rates per customer; a customer missing from the table pays no tax."""

    customers: Mapping[str, CustomerTaxRates]

    def calculate(self, request: TaxRequest) -> tuple[TaxLine, ...]:
        rates = self.customers.get(request.customer_id)
        if rates is None:
            return ()
        taxable: dict[str, int] = {}
        keys: dict[str, list[LineKey]] = {}
        known: dict[str, TaxRate] = {}
        for line in request.lines:
            for rate in rates.rates_for(line.product):
                previous = known.setdefault(rate.rate_id, rate)
                if previous != rate:
                    raise Rejected.because(
                        "tax_rate_id_must_be_unique", f"two rates are called {rate.rate_id}", "rates"
                    )
                taxable[rate.rate_id] = taxable.get(rate.rate_id, 0) + line.amount_minor
                keys.setdefault(rate.rate_id, []).append(line.key)
        return tuple(
            tax_line(known[rate_id], taxable[rate_id], tuple(keys[rate_id]), request.currency)
            for rate_id in sorted(known)
        )


def tax_line(rate: TaxRate, taxable_minor: int, lines: Sequence[LineKey], currency: Unit) -> TaxLine:
    exact = COMPUTATION_CONTEXT.divide(
        COMPUTATION_CONTEXT.multiply(decimal_from_minor(taxable_minor, currency), rate.percent), _HUNDRED
    )
    return TaxLine(
        rate=rate,
        taxable_minor=taxable_minor,
        amount_minor=round_to_unit(exact, currency, RoundingMode.HALF_UP),
        lines=tuple(lines),
    )
