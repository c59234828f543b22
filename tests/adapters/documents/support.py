"""A sample invoice document, built the way a caller would build one from a stored invoice."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

from tally.adapters.documents import (
    Adjustment,
    BreakdownRow,
    InvoiceDocument,
    InvoiceLine,
    InvoiceStatus,
    Party,
    ProductGroup,
    ServicePeriod,
    TaxId,
    TaxLine,
)
from tally.core.money import Unit, currency

ROOT = Path(__file__).resolve().parents[3]

JANUARY = ServicePeriod(start=date(2026, 1, 1), end=date(2026, 2, 1))

SELLER = Party(
    name="Acme AI, Inc.",
    email="billing@acme.example",
    address_lines=("548 Market Street", "San Francisco, CA 94104", "United States"),
    tax_ids=(TaxId(type="us_ein", value="12-3456789"),),
)

BUYER = Party(
    name="Zoë Müller 株式会社",
    email="zoe@example.jp",
    address_lines=("1-2-3 Shibuya", "Tokyo 150-0002", "Japan"),
    tax_ids=(TaxId(type="jp_cn", value="1234567890123"),),
)


def sample_document(*, locale: str = "en_US", unit: Unit | None = None, **changes: object) -> InvoiceDocument:
    """An invoice of $1,234.50 due: a seat fee, graduated token usage, a discount, tax and credits."""
    seats = InvoiceLine(
        description="Team plan seats",
        quantity=Decimal(5),
        unit_price=Decimal("100.00"),
        service_period=JANUARY,
        amount=Decimal("500.00"),
    )
    tokens = InvoiceLine(
        description="GPT tokens (input)",
        quantity=Decimal(1_500_000),
        service_period=JANUARY,
        amount=Decimal("1000.00"),
        breakdown=(
            BreakdownRow(
                description="First 1,000,000", quantity=Decimal(1_000_000), unit_price=Decimal("0"), amount=Decimal(0)
            ),
            BreakdownRow(
                description="Above 1,000,000",
                quantity=Decimal(500_000),
                unit_price=Decimal("0.002"),
                amount=Decimal("1000.000"),
            ),
        ),
    )
    document = InvoiceDocument(
        seller=SELLER,
        buyer=BUYER,
        number="INV-2026-0042",
        status=InvoiceStatus.OPEN,
        issue_date=date(2026, 2, 1),
        due_date=date(2026, 3, 3),
        service_period=JANUARY,
        currency=unit or currency("USD"),
        locale=locale,
        groups=(
            ProductGroup(name="Team plan", lines=(seats,)),
            ProductGroup(name="Model usage", lines=(tokens,)),
        ),
        subtotal=Decimal("1500.00"),
        discounts=(Adjustment(description="Launch coupon (10% off)", amount=Decimal("150.00")),),
        taxes=(TaxLine(description="Sales tax", rate_percent=Decimal("8.5"), amount=Decimal("114.75")),),
        total=Decimal("1464.75"),
        credits_applied=(Adjustment(description="Prepaid credits applied", amount=Decimal("230.25")),),
        amount_paid=Decimal(0),
        amount_due=Decimal("1234.50"),
        notes=("Pay by bank transfer to IBAN DE89 3704 0044 0532 0130 00.\nReference: INV-2026-0042.",),
        footer="Acme AI, Inc. · 548 Market Street, San Francisco · billing@acme.example",
    )
    return replace(document, **changes) if changes else document  # type: ignore[arg-type]


def one_line_document(
    *, locale: str, unit: Unit, amount: Decimal, lines: int = 1, status: InvoiceStatus = InvoiceStatus.OPEN
) -> InvoiceDocument:
    """`lines` lines of `amount` each, nothing else: the amount due is their sum."""
    invoice_lines = tuple(
        InvoiceLine(description=f"Usage line {index + 1}", quantity=Decimal(1), unit_price=amount, amount=amount)
        for index in range(lines)
    )
    total = amount * lines
    return InvoiceDocument(
        seller=SELLER,
        buyer=Party(name="Zoë Müller"),
        number="INV-7",
        status=status,
        issue_date=date(2026, 2, 1),
        due_date=date(2026, 3, 3),
        service_period=JANUARY,
        currency=unit,
        locale=locale,
        groups=(ProductGroup(name="Platform", lines=invoice_lines),),
        subtotal=total,
        total=total,
        amount_due=total,
    )
