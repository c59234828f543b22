"""The invoice lifecycle: pure transitions with stable refusal codes.

```
draft ──finalize──▶ open ──payments / credit notes cover it──▶ paid
                     │ ╲──mark_uncollectible──▶ uncollectible ──payments cover it──▶ paid
                     └──void (no payment, no credit note)──▶ void      (uncollectible may be voided too)
```

- **finalize** fixes the invoice: its number (from the app's gapless per-tenant sequence), issue and
  due dates. An invoice that owes nothing is paid on finalization.
- **record_payment** (manual: a bank transfer) pays an open or uncollectible invoice. What exceeds
  the amount remaining becomes the customer's balance, which the next invoice uses.
- **issue_credit_note** takes back part or all of what a finalized invoice charged, with a reason.
  It reduces what the customer still owes first; the rest goes to their balance. It can never take
  back more than is creditable (what was charged less earlier credit notes), and it takes back each
  revenue and tax account in proportion to what remains creditable in it.
- **void** cancels an open or uncollectible invoice that has neither payments nor credit notes: its
  postings are reversed, credits and balance it used are given back.

Refusals, checked status first, then amounts: `invoice_must_be_draft`, `invoice_must_be_finalized`,
`invoice_is_void`, `invoice_must_not_be_paid`, `invoice_must_be_open`, `invoice_must_have_no_payments`,
`invoice_must_have_no_credit_notes`, `invoice_number_required`, `due_date_must_not_precede_issue_date`,
`payment_amount_must_be_positive`, `payment_currency_must_match_invoice`,
`credit_note_amount_must_be_positive`, `credit_note_exceeds_creditable_amount`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tally.core.invoicing.lines import check_id, line_account
from tally.core.invoicing.proposal import Proposal
from tally.core.money import AMOUNT_MINOR_MAX, Unit, allocate
from tally.core.rejections import Rejected, require

MEMO_LENGTH_MAX = 1_000
NUMBER_LENGTH_MAX = 64


def creditable_accounts(proposal: Proposal) -> tuple[tuple[str, int], ...]:
    """What credit notes may take back from each revenue and tax account: the invoice's total after
    credits (what the customer is asked to pay, balance included), split by account in proportion to
    each line's net. Sums exactly to the total; empty when the total is not positive."""
    total = proposal.totals.total_minor
    if total <= 0:
        return ()
    weights: dict[str, int] = {}
    for key, product, net in proposal.nets:
        account = line_account(key.kind, product)
        weights[account] = weights.get(account, 0) + net
    weights["tax_payable"] = weights.get("tax_payable", 0) + proposal.totals.tax_minor
    positive = sorted((code, amount) for code, amount in weights.items() if amount > 0)
    parts = allocate(total, [amount for _, amount in positive])
    return tuple((code, part) for (code, _), part in zip(positive, parts, strict=True) if part)


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class CreditNoteReason(StrEnum):
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    ORDER_CHANGE = "order_change"
    PRODUCT_UNSATISFACTORY = "product_unsatisfactory"
    BILLING_ERROR = "billing_error"
    OTHER = "other"
    # Issued by the billing run for late usage that charges less (`late_usage.py`), with the lines it
    # carries; refused for a credit note issued by hand, which carries no lines.
    LATE_USAGE = "late_usage"


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceState:
    invoice_id: str
    customer_id: str
    currency: Unit
    status: InvoiceStatus
    total_minor: int  # after discounts, credits and tax; before the customer's balance
    balance_applied_minor: int
    balance_credited_minor: int
    amount_due_minor: int  # what the invoice asks to be paid
    # What can still be credited, per revenue and tax account (sums to creditable_minor).
    creditable: tuple[tuple[str, int], ...]
    number: str | None = None
    issued_at: datetime | None = None
    due_at: datetime | None = None
    amount_paid_minor: int = 0
    amount_credited_minor: int = 0
    credited_against_due_minor: int = 0

    def __post_init__(self) -> None:
        require(self.amount_paid_minor >= 0, "payments are positive")
        require(0 <= self.credited_against_due_minor <= self.amount_credited_minor, "credit notes split")
        require(self.amount_remaining_minor >= 0, "an invoice is never paid beyond its amount due")
        require(all(amount >= 0 for _, amount in self.creditable), "creditable amounts are not negative")

    @property
    def amount_remaining_minor(self) -> int:
        return self.amount_due_minor - self.amount_paid_minor - self.credited_against_due_minor

    @property
    def creditable_minor(self) -> int:
        return sum(amount for _, amount in self.creditable)


def draft_invoice(invoice_id: str, proposal: Proposal) -> InvoiceState:
    """A draft from a proposal. Drafts are refreshed by proposing again, never edited line by line."""
    check_id(invoice_id, "invoice_id_invalid", "invoice_id")
    totals = proposal.totals
    return InvoiceState(
        invoice_id=invoice_id,
        customer_id=proposal.customer_id,
        currency=proposal.currency,
        status=InvoiceStatus.DRAFT,
        total_minor=totals.total_minor,
        balance_applied_minor=totals.balance_applied_minor,
        balance_credited_minor=totals.balance_credited_minor,
        amount_due_minor=totals.amount_due_minor,
        creditable=creditable_accounts(proposal),
    )


def finalize(state: InvoiceState, *, number: str, issued_at: datetime, due_at: datetime) -> InvoiceState:
    if state.status is not InvoiceStatus.DRAFT:
        raise Rejected.because(
            "invoice_must_be_draft", f"the invoice is {state.status}; only a draft is finalized", "status"
        )
    if not isinstance(number, str) or not 1 <= len(number) <= NUMBER_LENGTH_MAX:
        raise Rejected.because(
            "invoice_number_required", f"an invoice number is 1 to {NUMBER_LENGTH_MAX} characters", "number"
        )
    if issued_at.tzinfo is None or due_at.tzinfo is None:
        raise Rejected.because("datetime_must_have_timezone", "issue and due dates need a time zone", "due_at")
    if due_at < issued_at:
        raise Rejected.because(
            "due_date_must_not_precede_issue_date", "an invoice falls due on or after its issue", "due_at"
        )
    status = InvoiceStatus.PAID if state.amount_due_minor == 0 else InvoiceStatus.OPEN
    return dataclasses.replace(state, status=status, number=number, issued_at=issued_at, due_at=due_at)


def _must_be_finalized(state: InvoiceState) -> None:
    if state.status is InvoiceStatus.DRAFT:
        raise Rejected.because("invoice_must_be_finalized", "a draft is refreshed or deleted, not settled", "status")
    if state.status is InvoiceStatus.VOID:
        raise Rejected.because("invoice_is_void", "the invoice is void", "status")


@dataclass(frozen=True, slots=True, kw_only=True)
class ManualPayment:
    payment_id: str
    amount_minor: int
    currency: Unit
    received_at: datetime
    method: str = "bank_transfer"
    reference: str = ""

    def __post_init__(self) -> None:
        check_id(self.payment_id, "payment_id_invalid", "payment_id")
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise TypeError("amount_minor is an int of minor units")


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentOutcome:
    state: InvoiceState
    payment: ManualPayment
    applied_minor: int  # to the invoice
    overpaid_minor: int  # to the customer's balance


def record_payment(state: InvoiceState, payment: ManualPayment) -> PaymentOutcome:
    _must_be_finalized(state)
    if state.status is InvoiceStatus.PAID:
        raise Rejected.because("invoice_must_be_open", "the invoice is already paid", "status")
    if not 0 < payment.amount_minor <= AMOUNT_MINOR_MAX:
        raise Rejected.because("payment_amount_must_be_positive", "a payment is for an amount above zero", "amount")
    if payment.currency != state.currency:
        raise Rejected.because(
            "payment_currency_must_match_invoice",
            f"the invoice is in {state.currency.code}, the payment in {payment.currency.code}",
            "currency",
        )
    applied = min(payment.amount_minor, state.amount_remaining_minor)
    paid = dataclasses.replace(state, amount_paid_minor=state.amount_paid_minor + applied)
    if paid.amount_remaining_minor == 0:
        paid = dataclasses.replace(paid, status=InvoiceStatus.PAID)
    return PaymentOutcome(
        state=paid, payment=payment, applied_minor=applied, overpaid_minor=payment.amount_minor - applied
    )


def mark_uncollectible(state: InvoiceState) -> InvoiceState:
    _must_be_finalized(state)
    if state.status is not InvoiceStatus.OPEN:
        raise Rejected.because("invoice_must_be_open", f"the invoice is {state.status}", "status")
    return dataclasses.replace(state, status=InvoiceStatus.UNCOLLECTIBLE)


def void(state: InvoiceState) -> InvoiceState:
    _must_be_finalized(state)
    if state.status is InvoiceStatus.PAID:
        raise Rejected.because(
            "invoice_must_not_be_paid", "a paid invoice is corrected by a credit note, not voided", "status"
        )
    if state.amount_paid_minor > 0:
        raise Rejected.because(
            "invoice_must_have_no_payments", "the invoice has payments; issue a credit note", "status"
        )
    if state.amount_credited_minor > 0:
        raise Rejected.because("invoice_must_have_no_credit_notes", "the invoice has credit notes", "status")
    return dataclasses.replace(state, status=InvoiceStatus.VOID)


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditNote:
    credit_note_id: str
    amount_minor: int
    reason: CreditNoteReason
    memo: str = ""

    def __post_init__(self) -> None:
        check_id(self.credit_note_id, "credit_note_id_invalid", "credit_note_id")
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise TypeError("amount_minor is an int of minor units")
        try:
            object.__setattr__(self, "reason", CreditNoteReason(self.reason))
        except ValueError:
            raise Rejected.because(
                "credit_note_reason_unknown", f"reason is one of {', '.join(CreditNoteReason)}", "reason"
            ) from None
        if len(self.memo) > MEMO_LENGTH_MAX:
            raise Rejected.because("memo_too_long", f"a memo has at most {MEMO_LENGTH_MAX} characters", "memo")


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditNoteOutcome:
    state: InvoiceState
    credit_note: CreditNote
    against_due_minor: int  # reduces what the customer still owes on the invoice
    to_balance_minor: int  # added to the customer's balance
    by_account: tuple[tuple[str, int], ...]  # what is taken back from each revenue and tax account


def issue_credit_note(state: InvoiceState, note: CreditNote) -> CreditNoteOutcome:
    _must_be_finalized(state)
    if note.amount_minor <= 0:
        raise Rejected.because(
            "credit_note_amount_must_be_positive", "a credit note is for an amount above zero", "amount"
        )
    if note.amount_minor > state.creditable_minor:
        raise Rejected.because(
            "credit_note_exceeds_creditable_amount",
            f"at most {state.creditable_minor} minor units of this invoice can still be credited",
            "amount",
        )
    # Largest remainders: each part stays within what remains creditable in its account.
    parts = allocate(note.amount_minor, [amount for _, amount in state.creditable])
    by_account = tuple((code, part) for (code, _), part in zip(state.creditable, parts, strict=True) if part)
    creditable = tuple(
        (code, amount - part) for (code, amount), part in zip(state.creditable, parts, strict=True) if amount - part
    )
    against_due = min(note.amount_minor, state.amount_remaining_minor)
    credited = dataclasses.replace(
        state,
        creditable=creditable,
        amount_credited_minor=state.amount_credited_minor + note.amount_minor,
        credited_against_due_minor=state.credited_against_due_minor + against_due,
    )
    if credited.status in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE) and credited.amount_remaining_minor == 0:
        credited = dataclasses.replace(credited, status=InvoiceStatus.PAID)
    return CreditNoteOutcome(
        state=credited,
        credit_note=note,
        against_due_minor=against_due,
        to_balance_minor=note.amount_minor - against_due,
        by_account=by_account,
    )
