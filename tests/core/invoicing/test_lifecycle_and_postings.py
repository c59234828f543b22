"""The invoice lifecycle (transitions and refusals) and the ledger legs of every posting template."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal

import pytest

from tally.core.invoicing import (
    CreditGrant,
    CreditNote,
    CreditNoteReason,
    CustomerTaxRates,
    GrantBalance,
    GrantKind,
    InvoiceState,
    InvoiceStatus,
    ManualPayment,
    Proposal,
    TaxRate,
    TaxRateTable,
    credit_note_issued,
    credits_expired,
    credits_granted,
    draft_invoice,
    expire_grants,
    finalize,
    invoice_postings,
    invoice_voided,
    issue_credit_note,
    manual_payment_recorded,
    mark_uncollectible,
    propose,
    record_payment,
    void,
)
from tally.core.ledger.templates import Posting
from tally.core.money import custom_unit
from tally.core.rejections import Rejected
from tests.core.invoicing.builders import EUR, PLATFORM_ITEM, TOKENS_ITEM, USD, context, readings, started, subscription
from tests.core.subscriptions.builders import utc

JAN, FEB = utc(2026, 1, 1), utc(2026, 2, 1)
TAX = TaxRateTable({"cus_1": CustomerTaxRates(default=(TaxRate(rate_id="vat", name="VAT", percent=Decimal(10)),))})


def proposal(*, balance: int = 0, grants: tuple[GrantBalance, ...] = ()) -> Proposal:
    month = subscription(started(PLATFORM_ITEM, TOKENS_ITEM), through=FEB)
    return propose(
        context(
            FEB,
            subscriptions=(month,),
            usage=readings(month, {"tokens": 11_000}),
            tax=TAX,
            customer_balance_minor=balance,
            grants=grants,
        )
    )


def open_invoice(**options: int) -> InvoiceState:
    draft = draft_invoice("inv_1", proposal(**options))
    return finalize(draft, number="2026-0001", issued_at=FEB, due_at=utc(2026, 3, 3))


def legs(posting: Posting) -> set[tuple[str, str, str, int]]:
    return {(e.account.code, e.account.unit_code, e.direction.value, e.amount) for e in posting.entries}


def test_draft_to_paid_by_manual_payments_with_an_overpayment() -> None:
    invoice = open_invoice()
    # Fees $100 (January) + $100 (February), usage $100, VAT 10 %.
    assert (invoice.status, invoice.amount_due_minor, invoice.number) == (InvoiceStatus.OPEN, 33_000, "2026-0001")
    half = record_payment(invoice, ManualPayment(payment_id="p1", amount_minor=20_000, currency=USD, received_at=FEB))
    assert (half.state.status, half.state.amount_remaining_minor, half.overpaid_minor) == (
        InvoiceStatus.OPEN,
        13_000,
        0,
    )
    rest = record_payment(
        half.state, ManualPayment(payment_id="p2", amount_minor=15_000, currency=USD, received_at=FEB)
    )
    assert (rest.state.status, rest.applied_minor, rest.overpaid_minor) == (InvoiceStatus.PAID, 13_000, 2_000)
    assert legs(manual_payment_recorded("cus_1", rest)) == {
        ("cash", "USD", "debit", 15_000),
        ("accounts_receivable", "USD", "credit", 13_000),
        ("customer_credit.balance", "USD", "credit", 2_000),
    }


def test_an_invoice_that_owes_nothing_is_paid_on_finalization() -> None:
    state = finalize(draft_invoice("inv_2", proposal(balance=1_000_000)), number="2", issued_at=FEB, due_at=FEB)
    assert state.status is InvoiceStatus.PAID and state.balance_applied_minor == 33_000


def _code(call: Callable[[], object]) -> str:
    with pytest.raises(Rejected) as refused:
        call()
    return refused.value.rejection.code


def test_lifecycle_refusals() -> None:
    draft = draft_invoice("inv_1", proposal())
    invoice = finalize(draft, number="1", issued_at=FEB, due_at=FEB)
    paid = record_payment(
        invoice, ManualPayment(payment_id="p", amount_minor=33_000, currency=USD, received_at=FEB)
    ).state
    partly = record_payment(invoice, ManualPayment(payment_id="p", amount_minor=1, currency=USD, received_at=FEB)).state
    voided = void(invoice)
    note = CreditNote(credit_note_id="cn", amount_minor=100, reason=CreditNoteReason.DUPLICATE)
    cases: dict[str, Callable[[], object]] = {
        "finalize an open invoice": lambda: finalize(invoice, number="2", issued_at=FEB, due_at=FEB),
        "finalize without a number": lambda: finalize(draft, number="", issued_at=FEB, due_at=FEB),
        "due before issued": lambda: finalize(draft, number="1", issued_at=FEB, due_at=JAN),
        "void a draft": lambda: void(draft),
        "void a paid invoice": lambda: void(paid),
        "void a partly paid invoice": lambda: void(partly),
        "void a credited invoice": lambda: void(issue_credit_note(invoice, note).state),
        "void twice": lambda: void(voided),
        "pay a void invoice": lambda: record_payment(
            voided, ManualPayment(payment_id="p", amount_minor=1, currency=USD, received_at=FEB)
        ),
        "pay a paid invoice": lambda: record_payment(
            paid, ManualPayment(payment_id="p", amount_minor=1, currency=USD, received_at=FEB)
        ),
        "pay nothing": lambda: record_payment(
            invoice, ManualPayment(payment_id="p", amount_minor=0, currency=USD, received_at=FEB)
        ),
        "pay in euros": lambda: record_payment(
            invoice, ManualPayment(payment_id="p", amount_minor=5, currency=EUR, received_at=FEB)
        ),
        "uncollectible draft": lambda: mark_uncollectible(draft),
        "uncollectible paid": lambda: mark_uncollectible(paid),
        "credit a draft": lambda: issue_credit_note(draft, note),
        "credit too much": lambda: issue_credit_note(invoice, dataclasses.replace(note, amount_minor=33_001)),
        "credit nothing": lambda: issue_credit_note(invoice, dataclasses.replace(note, amount_minor=0)),
        "credit without a reason": lambda: CreditNote(credit_note_id="cn", amount_minor=1, reason="because"),  # type: ignore[arg-type]
    }
    assert {name: _code(call) for name, call in cases.items()} == {
        "finalize an open invoice": "invoice_must_be_draft",
        "finalize without a number": "invoice_number_required",
        "due before issued": "due_date_must_not_precede_issue_date",
        "void a draft": "invoice_must_be_finalized",
        "void a paid invoice": "invoice_must_not_be_paid",
        "void a partly paid invoice": "invoice_must_have_no_payments",
        "void a credited invoice": "invoice_must_have_no_credit_notes",
        "void twice": "invoice_is_void",
        "pay a void invoice": "invoice_is_void",
        "pay a paid invoice": "invoice_must_be_open",
        "pay nothing": "payment_amount_must_be_positive",
        "pay in euros": "payment_currency_must_match_invoice",
        "uncollectible draft": "invoice_must_be_finalized",
        "uncollectible paid": "invoice_must_be_open",
        "credit a draft": "invoice_must_be_finalized",
        "credit too much": "credit_note_exceeds_creditable_amount",
        "credit nothing": "credit_note_amount_must_be_positive",
        "credit without a reason": "credit_note_reason_unknown",
    }


def test_credit_notes_reduce_what_is_owed_then_credit_the_balance() -> None:
    invoice = open_invoice()
    # Creditable by account: deferred revenue $200, revenue.ai $100, tax $30.
    assert dict(invoice.creditable) == {"deferred_revenue": 20_000, "revenue.ai": 10_000, "tax_payable": 3_000}
    paid = record_payment(
        invoice, ManualPayment(payment_id="p", amount_minor=30_000, currency=USD, received_at=FEB)
    ).state
    partial = issue_credit_note(
        paid, CreditNote(credit_note_id="cn1", amount_minor=6_600, reason=CreditNoteReason.BILLING_ERROR)
    )
    assert (partial.against_due_minor, partial.to_balance_minor, partial.state.status) == (
        3_000,
        3_600,
        InvoiceStatus.PAID,
    )
    assert dict(partial.by_account) == {"deferred_revenue": 4_000, "revenue.ai": 2_000, "tax_payable": 600}
    assert legs(credit_note_issued("cus_1", USD, partial)) == {
        ("deferred_revenue", "USD", "debit", 4_000),
        ("revenue.ai", "USD", "debit", 2_000),
        ("tax_payable", "USD", "debit", 600),
        ("accounts_receivable", "USD", "credit", 3_000),
        ("customer_credit.balance", "USD", "credit", 3_600),
    }
    rest = issue_credit_note(partial.state, CreditNote(credit_note_id="cn2", amount_minor=26_400, reason="other"))  # type: ignore[arg-type]
    assert rest.state.creditable_minor == 0 and rest.to_balance_minor == 26_400


def test_finalizing_posts_receivable_against_revenue_deferred_revenue_and_tax() -> None:
    promo = GrantBalance(
        grant=CreditGrant(grant_id="promo", kind=GrantKind.PROMOTIONAL, unit=USD, amount_minor=5_000, effective_at=JAN),
        remaining_minor=5_000,
    )
    invoice = proposal(balance=1_000, grants=(promo,))
    postings = invoice_postings(invoice)
    assert [p.template for p in postings] == ["invoice_finalized", "credits_applied", "customer_balance_applied"]
    # Credits come before tax: ($300 − $50) × 10 % = $25.
    assert legs(postings[0]) == {
        ("accounts_receivable", "USD", "debit", 32_500),
        ("deferred_revenue", "USD", "credit", 20_000),
        ("revenue.ai", "USD", "credit", 10_000),
        ("tax_payable", "USD", "credit", 2_500),
    }
    assert legs(postings[1]) == {
        ("customer_credit.grant_promo", "USD", "debit", 5_000),
        ("accounts_receivable", "USD", "credit", 5_000),
    }
    assert legs(postings[2]) == {
        ("customer_credit.balance", "USD", "debit", 1_000),
        ("accounts_receivable", "USD", "credit", 1_000),
    }
    receivable = sum(
        (e.amount if e.direction.value == "debit" else -e.amount)
        for p in postings
        for e in p.entries
        if e.account.code == "accounts_receivable"
    )
    assert receivable == invoice.totals.amount_due_minor == 26_500
    reversals = invoice_voided(postings)
    net: dict[tuple[str, str], int] = {}
    for p in (*postings, *reversals):
        for e in p.entries:
            key = (e.account.code, e.account.unit_code)
            net[key] = net.get(key, 0) + (e.amount if e.direction.value == "debit" else -e.amount)
    assert set(net.values()) == {0}
    assert {p.template for p in reversals} == {"invoice_voided"}


def test_grants_and_expiries_in_money_and_in_a_custom_unit() -> None:
    credits = custom_unit("CREDITS", 0)
    custom = CreditGrant(
        grant_id="bulk",
        kind=GrantKind.PREPAID,
        unit=credits,
        amount_minor=10_000,
        effective_at=JAN,
        expires_at=FEB,
        value_per_unit=Decimal("0.01"),
        value_currency=USD,
    )
    assert legs(credits_granted("cus_1", custom, price_minor=9_000)) == {
        ("customer_credit.grant_bulk", "CREDITS", "credit", 10_000),
        ("unit_conversion", "CREDITS", "debit", 10_000),
        ("unit_conversion", "USD", "credit", 9_000),
        ("accounts_receivable", "USD", "debit", 9_000),
    }
    (expiry,) = expire_grants([GrantBalance(grant=custom, remaining_minor=2_500)], at=FEB)
    assert legs(credits_expired("cus_1", expiry)) == {
        ("customer_credit.grant_bulk", "CREDITS", "debit", 2_500),
        ("unit_conversion", "CREDITS", "credit", 2_500),
        ("unit_conversion", "USD", "debit", 2_500),
        ("breakage_revenue", "USD", "credit", 2_500),
    }
    promo = CreditGrant(
        grant_id="gift", kind=GrantKind.PROMOTIONAL, unit=USD, amount_minor=700, effective_at=JAN, expires_at=FEB
    )
    assert legs(credits_granted("cus_1", promo)) == {
        ("promotions", "USD", "debit", 700),
        ("customer_credit.grant_gift", "USD", "credit", 700),
    }
    (gift_expiry,) = expire_grants([GrantBalance(grant=promo, remaining_minor=200)], at=FEB)
    assert legs(credits_expired("cus_1", gift_expiry)) == {
        ("customer_credit.grant_gift", "USD", "debit", 200),
        ("promotions", "USD", "credit", 200),
    }
