"""The invoice as a document shows it: a small frozen model, independent of how invoices are stored.

Whoever renders an invoice (the API, the CLI, a worker) maps its stored invoice into an
`InvoiceDocument` once; the renderers only lay out and format what it holds. Amounts are exact
`Decimal` in major units of `currency` (12.34 for $12.34). Amounts that are money on the invoice
(line amounts, discounts, credits, tax, totals) carry no more digits than the currency has; unit
prices and usage breakdown rows are shown exactly, however many digits they have.

A document checks itself when built. Its figures must add up:

    subtotal   = sum of the line amounts
    total      = subtotal - discounts + tax
    amount_due = total - credits applied - amount paid

A document that breaks one of these is a bug in the code that built it, never something to print:
it raises `InvariantViolation`. Text is printed as given, except that control characters become
spaces (and line breaks too, outside notes and the footer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from babel import Locale, UnknownLocaleError

from tally.core.money import COMPUTATION_CONTEXT, Unit
from tally.core.rejections import InvariantViolation, require

# Limits (STYLE rule 9). A document past one is refused, naming the limit.
LINES_PER_DOCUMENT_MAX = 5_000
BREAKDOWN_ROWS_PER_LINE_MAX = 200
ADJUSTMENTS_PER_KIND_MAX = 100
NOTES_MAX = 20
TEXT_LENGTH_MAX = 2_000
ADDRESS_LINES_MAX = 8
TAX_IDS_MAX = 10


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


@dataclass(frozen=True, slots=True, kw_only=True)
class TaxId:
    """A tax registration as the customer record spells it: `type` like "eu_vat", `value` like "DE123456789"."""

    type: str
    value: str

    def __post_init__(self) -> None:
        _require_text(self.type, "tax id type")
        _require_text(self.value, "tax id value")


@dataclass(frozen=True, slots=True, kw_only=True)
class Party:
    """The seller or the buyer. The address is already in the lines it is printed in."""

    name: str
    email: str | None = None
    address_lines: tuple[str, ...] = ()
    tax_ids: tuple[TaxId, ...] = ()

    def __post_init__(self) -> None:
        _require_text(self.name, "party name")
        _require_optional_text(self.email, "party email")
        _require_at_most(self.address_lines, ADDRESS_LINES_MAX, "ADDRESS_LINES_MAX")
        for line in self.address_lines:
            _require_text(line, "address line")
        _require_at_most(self.tax_ids, TAX_IDS_MAX, "TAX_IDS_MAX")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServicePeriod:
    """What a line (or the invoice) pays for: the half-open days `[start, end)`.

    It is printed with its last day included, the way people read periods: `[2026-01-01, 2026-02-01)`
    reads "Jan 1 – 31, 2026".
    """

    start: date
    end: date

    def __post_init__(self) -> None:
        require(self.start < self.end, f"a service period must end after it starts: {self.start} to {self.end}")


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakdownRow:
    """One step of how a line's amount was derived: a tier, free units, a package, a minimum.

    `amount` is exact and signed, before the line was rounded; it may have more digits than the
    currency (1,234,567 tokens at $0.000002 is $2.469134).
    """

    description: str
    amount: Decimal
    quantity: Decimal | None = None
    unit_price: Decimal | None = None

    def __post_init__(self) -> None:
        _require_text(self.description, "breakdown description")
        _require_exact(self.amount, "breakdown amount")
        _require_optional_exact(self.quantity, "breakdown quantity")
        _require_optional_exact(self.unit_price, "breakdown unit price")


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceLine:
    """One invoice line. `amount` is the rounded amount billed (negative for a credit line)."""

    description: str
    amount: Decimal
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    service_period: ServicePeriod | None = None
    breakdown: tuple[BreakdownRow, ...] = ()

    def __post_init__(self) -> None:
        _require_text(self.description, "line description")
        _require_exact(self.amount, "line amount")
        _require_optional_exact(self.quantity, "line quantity")
        _require_optional_exact(self.unit_price, "line unit price")
        _require_at_most(self.breakdown, BREAKDOWN_ROWS_PER_LINE_MAX, "BREAKDOWN_ROWS_PER_LINE_MAX")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductGroup:
    """The lines of one product, shown under its name in the order given."""

    name: str
    lines: tuple[InvoiceLine, ...]

    def __post_init__(self) -> None:
        _require_text(self.name, "product name")
        require(len(self.lines) > 0, f"product group {self.name!r} has no lines")


@dataclass(frozen=True, slots=True, kw_only=True)
class Adjustment:
    """A discount or an application of credits. `amount` is how much it takes off, so never negative."""

    description: str
    amount: Decimal

    def __post_init__(self) -> None:
        _require_text(self.description, "adjustment description")
        _require_exact(self.amount, "adjustment amount")
        require(self.amount >= 0, f"adjustment {self.description!r} must take off a non-negative amount")


@dataclass(frozen=True, slots=True, kw_only=True)
class TaxLine:
    """A tax charged on the invoice, e.g. description "VAT" with `rate_percent` 19."""

    description: str
    amount: Decimal
    rate_percent: Decimal | None = None

    def __post_init__(self) -> None:
        _require_text(self.description, "tax description")
        _require_exact(self.amount, "tax amount")
        _require_optional_exact(self.rate_percent, "tax rate")


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceDocument:
    """Everything an invoice document shows. See the module docstring for the sums it must satisfy.

    `number` is None only for a draft (numbers are given at finalization). `locale` is a CLDR
    locale identifier ("en_US", "de_DE", "ja_JP"): it decides how amounts and dates are written and
    the paper size of the PDF (US Letter in the United States and Canada, A4 elsewhere).
    """

    seller: Party
    buyer: Party
    number: str | None
    status: InvoiceStatus
    issue_date: date
    due_date: date | None
    service_period: ServicePeriod | None
    currency: Unit
    locale: str
    groups: tuple[ProductGroup, ...]
    subtotal: Decimal
    total: Decimal
    amount_due: Decimal
    amount_paid: Decimal = Decimal(0)
    discounts: tuple[Adjustment, ...] = ()
    taxes: tuple[TaxLine, ...] = ()
    credits_applied: tuple[Adjustment, ...] = ()
    notes: tuple[str, ...] = ()
    footer: str | None = None

    def __post_init__(self) -> None:
        require(isinstance(self.status, InvoiceStatus), f"unknown invoice status {self.status!r}")
        if self.number is None:
            require(self.status is InvoiceStatus.DRAFT, f"a {self.status} invoice must have a number")
        else:
            _require_text(self.number, "invoice number")
        if self.due_date is not None:
            require(self.due_date >= self.issue_date, "an invoice cannot be due before it is issued")
        try:
            Locale.parse(self.locale)
        except (UnknownLocaleError, ValueError) as error:
            raise InvariantViolation(f"unknown locale {self.locale!r}: {error}") from error
        lines = [line for group in self.groups for line in group.lines]
        _require_at_most(tuple(lines), LINES_PER_DOCUMENT_MAX, "LINES_PER_DOCUMENT_MAX")
        for kind, adjustments in (("discounts", self.discounts), ("credits", self.credits_applied)):
            _require_at_most(adjustments, ADJUSTMENTS_PER_KIND_MAX, f"ADJUSTMENTS_PER_KIND_MAX ({kind})")
        _require_at_most(self.taxes, ADJUSTMENTS_PER_KIND_MAX, "ADJUSTMENTS_PER_KIND_MAX (taxes)")
        _require_at_most(self.notes, NOTES_MAX, "NOTES_MAX")
        for note in self.notes:
            _require_text(note, "note")
        _require_optional_text(self.footer, "footer")
        self._require_money()
        self._require_sums(lines)

    def _require_money(self) -> None:
        """Amounts that are money on the invoice must be whole minor units of the currency."""
        amounts: list[tuple[str, Decimal]] = [
            ("subtotal", self.subtotal),
            ("total", self.total),
            ("amount paid", self.amount_paid),
            ("amount due", self.amount_due),
        ]
        amounts += [(f"line {line.description!r}", line.amount) for group in self.groups for line in group.lines]
        amounts += [(f"discount {item.description!r}", item.amount) for item in self.discounts]
        amounts += [(f"credit {item.description!r}", item.amount) for item in self.credits_applied]
        amounts += [(f"tax {item.description!r}", item.amount) for item in self.taxes]
        for name, amount in amounts:
            _require_exact(amount, name)
            require(
                amount == amount.quantize(Decimal(1).scaleb(-self.currency.scale), context=COMPUTATION_CONTEXT),
                f"{name} has more digits than {self.currency.code} allows: {amount}",
            )
        require(self.amount_paid >= 0, "amount paid must not be negative")

    def _require_sums(self, lines: list[InvoiceLine]) -> None:
        subtotal = _sum(line.amount for line in lines)
        require(self.subtotal == subtotal, f"subtotal {self.subtotal} is not the sum of the lines {subtotal}")
        total = _sum([self.subtotal, *(tax.amount for tax in self.taxes)]) - _sum(d.amount for d in self.discounts)
        require(self.total == total, f"total {self.total} is not subtotal - discounts + tax = {total}")
        amount_due = self.total - _sum(c.amount for c in self.credits_applied) - self.amount_paid
        require(
            self.amount_due == amount_due,
            f"amount due {self.amount_due} is not total - credits - amount paid = {amount_due}",
        )


def _sum(values: Iterable[Decimal]) -> Decimal:
    total = Decimal(0)
    for value in values:
        total = COMPUTATION_CONTEXT.add(total, value)
    return total


def _require_exact(value: object, name: str) -> None:
    # A float never carries money or quantities (STYLE rule 1); ints are accepted nowhere either, so
    # every caller converts once, on purpose.
    require(isinstance(value, Decimal), f"{name} must be a Decimal, not {type(value).__name__}")
    require(isinstance(value, Decimal) and value.is_finite(), f"{name} must be finite")


def _require_optional_exact(value: object, name: str) -> None:
    if value is not None:
        _require_exact(value, name)


def _require_text(value: object, name: str) -> None:
    require(isinstance(value, str), f"{name} must be text")
    text = str(value)
    require(text.strip() != "", f"{name} must not be blank")
    require(len(text) <= TEXT_LENGTH_MAX, f"{name} is longer than TEXT_LENGTH_MAX ({TEXT_LENGTH_MAX})")


def _require_optional_text(value: object, name: str) -> None:
    if value is not None:
        _require_text(value, name)


def _require_at_most(items: tuple[object, ...], limit: int, limit_name: str) -> None:
    require(len(items) <= limit, f"{len(items)} items, more than {limit_name} ({limit})")
