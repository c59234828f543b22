"""A document checks itself: its figures add up, money has the currency's digits, limits hold."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from tally.adapters.documents import Adjustment, InvoiceLine, InvoiceStatus, ProductGroup, ServicePeriod
from tally.adapters.documents.model import LINES_PER_DOCUMENT_MAX
from tally.core.money import currency
from tally.core.rejections import InvariantViolation

from .support import sample_document


def test_the_sample_adds_up() -> None:
    document = sample_document()
    assert document.amount_due == Decimal("1234.50")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"subtotal": Decimal("1500.01"), "total": Decimal("1464.76"), "amount_due": Decimal("1234.51")}, "subtotal"),
        ({"total": Decimal("1464.76"), "amount_due": Decimal("1234.51")}, "total"),
        ({"amount_due": Decimal("1234.49")}, "amount due"),
        ({"amount_paid": Decimal("1.00")}, "amount due"),
        ({"discounts": ()}, "total"),
        ({"credits_applied": ()}, "amount due"),
    ],
)
def test_figures_that_do_not_add_up_are_a_bug(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvariantViolation, match=message):
        sample_document(**changes)


def test_a_payment_is_part_of_the_sum() -> None:
    document = sample_document(amount_paid=Decimal("1234.50"), amount_due=Decimal(0), status=InvoiceStatus.PAID)
    assert document.amount_due == 0


def test_money_must_fit_the_currency() -> None:
    # 1,464.75 has cents; yen have none.
    with pytest.raises(InvariantViolation, match="more digits than JPY"):
        sample_document(unit=currency("JPY"))


def test_floats_and_ints_are_refused_as_amounts() -> None:
    with pytest.raises(InvariantViolation, match="must be a Decimal, not float"):
        InvoiceLine(description="Seats", amount=12.5)  # type: ignore[arg-type]
    with pytest.raises(InvariantViolation, match="must be a Decimal, not int"):
        Adjustment(description="Coupon", amount=5)  # type: ignore[arg-type]


def test_only_a_draft_may_lack_a_number() -> None:
    assert sample_document(number=None, status=InvoiceStatus.DRAFT).number is None
    with pytest.raises(InvariantViolation, match="must have a number"):
        sample_document(number=None)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ServicePeriod(start=date(2026, 2, 1), end=date(2026, 2, 1)), "must end after it starts"),
        (lambda: sample_document(due_date=date(2026, 1, 1)), "due before it is issued"),
        (lambda: sample_document(locale="xx_YY"), "unknown locale"),
        (lambda: Adjustment(description="Coupon", amount=Decimal(-1)), "non-negative"),
        (lambda: ProductGroup(name="Empty", lines=()), "has no lines"),
        (lambda: InvoiceLine(description="  ", amount=Decimal(1)), "must not be blank"),
        (lambda: InvoiceLine(description="x" * 2001, amount=Decimal(1)), "TEXT_LENGTH_MAX"),
    ],
)
def test_malformed_documents_are_refused(build: object, message: str) -> None:
    with pytest.raises(InvariantViolation, match=message):
        build()  # type: ignore[operator]


def test_lines_are_limited() -> None:
    document = sample_document()
    line = InvoiceLine(description="Call", amount=Decimal(0))
    group = ProductGroup(name="Calls", lines=(line,) * (LINES_PER_DOCUMENT_MAX + 1))
    with pytest.raises(InvariantViolation, match="LINES_PER_DOCUMENT_MAX"):
        replace(document, groups=(*document.groups, group))
