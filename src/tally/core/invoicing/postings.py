"""Posting templates for invoicing: pure functions from invoicing outcomes to balanced ledger legs.

Accounts are named by role (chart code, unit, customer), as `tally.core.ledger.templates` does; the
app resolves them. Each template nets its legs per account and drops zeros, so it is balanced by
construction (and `Posting` checks it again). Corrections are reversals: `reversed_posting` turns a
posting into its mirror image, which is how a void undoes an invoice.

| template | debit | credit |
|---|---|---|
| `invoice_finalized` | receivable (total before credits); discounts | deferred revenue, revenue, tax payable |
| `credits_applied` | the grant's customer credit | receivable (custom units via unit conversion) |
| `customer_balance_applied` | customer credit (balance) | receivable |
| `customer_balance_credited` | receivable | customer credit (balance): a negative invoice |
| `credits_granted` | receivable or cash (prepaid), or promotions | the grant's customer credit |
| `credits_expired` | the grant's customer credit | breakage revenue (prepaid) or promotions |
| `manual_payment_recorded` | cash | receivable; customer credit (balance) for an overpayment |
| `credit_note_issued` | revenue, deferred revenue, tax payable | receivable; customer credit (balance) |
| `invoice_voided` | the mirror image of each posting of the invoice | |

Fees go to deferred revenue (recognized over their service period by revenue recognition); usage,
one-offs and true-ups to `revenue.<product>` (or `revenue`); discount lines to `discounts`.

Decisions:
- Every grant has its own customer-credit sub-account (`customer_credit.grant_<id>`), so what is
  left of a grant is a ledger balance and the chart's floor of zero keeps any grant from being
  overdrawn. Overpayments and credit notes sit in `customer_credit.balance`.
- A grant in a custom unit moves through `unit_conversion`: the credits leave the grant in their
  unit and the money they pay arrives in the invoice's currency; each unit balances on its own.
- Expired promotional credits give back the promotion expense instead of booking breakage revenue:
  a credit nobody paid for was never revenue. Expired prepaid credits are breakage revenue.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tally.core.invoicing.credits import CreditConsumption, CreditExpiry, CreditGrant, GrantKind
from tally.core.invoicing.lifecycle import CreditNoteOutcome, PaymentOutcome
from tally.core.invoicing.lines import line_account
from tally.core.invoicing.proposal import Proposal
from tally.core.ledger.model import Direction
from tally.core.ledger.templates import AccountRef, Posting, TemplateEntry
from tally.core.money import Unit
from tally.core.rejections import InvariantViolation

BALANCE_ACCOUNT = "customer_credit.balance"
RECEIVABLE = "accounts_receivable"


def grant_account(grant_id: str) -> str:
    return f"customer_credit.grant_{grant_id}"


def _customer_owned(code: str) -> bool:
    return code.split(".", 1)[0] in ("accounts_receivable", "customer_credit")


@dataclass(slots=True)
class _Legs:
    """Signed amounts per account (debit positive), netted, in a fixed order."""

    customer_id: str
    net: dict[AccountRef, int]

    @classmethod
    def of(cls, customer_id: str) -> _Legs:
        return cls(customer_id, {})

    def add(self, code: str, unit: Unit, direction: Direction, amount: int) -> None:
        ref = AccountRef(code, unit.code, self.customer_id if _customer_owned(code) else None)
        signed = amount if direction is Direction.DEBIT else -amount
        self.net[ref] = self.net.get(ref, 0) + signed

    def posting(self, template: str, description: str, metadata: Iterable[tuple[str, object]] = ()) -> Posting | None:
        entries = tuple(
            TemplateEntry(ref, Direction.DEBIT if amount > 0 else Direction.CREDIT, abs(amount))
            for ref, amount in sorted(self.net.items(), key=lambda item: (item[0].unit_code, item[0].code))
            if amount != 0
        )
        if not entries:
            return None
        return Posting(template=template, entries=entries, description=description, metadata=tuple(metadata))

    def required(self, template: str, description: str, metadata: Iterable[tuple[str, object]] = ()) -> Posting:
        posting = self.posting(template, description, metadata)
        if posting is None:
            raise InvariantViolation(f"template {template} must move money")
        return posting


# ----- the invoice -------------------------------------------------------------------------------


def invoice_finalized(proposal: Proposal) -> Posting | None:
    """The receivable for the invoice's total before credits and balance, against revenue, deferred
    revenue, discounts and tax payable. None when the invoice moves no money (no lines, all zero)."""
    legs = _Legs.of(proposal.customer_id)
    currency = proposal.currency
    for line in proposal.lines:
        account = line_account(line.key.kind, line.product)
        legs.add(account, currency, Direction.CREDIT, line.amount_minor)
        legs.add(RECEIVABLE, currency, Direction.DEBIT, line.amount_minor)
    for tax in proposal.tax:
        legs.add("tax_payable", currency, Direction.CREDIT, tax.amount_minor)
        legs.add(RECEIVABLE, currency, Direction.DEBIT, tax.amount_minor)
    return legs.posting("invoice_finalized", "invoice finalized")


def credits_applied(customer_id: str, consumption: CreditConsumption) -> Posting:
    """A grant pays part of an invoice: its credits leave the grant, the receivable shrinks."""
    grant = consumption.grant
    legs = _Legs.of(customer_id)
    legs.add(grant_account(grant.grant_id), grant.unit, Direction.DEBIT, consumption.units_minor)
    if grant.unit.is_custom:
        legs.add("unit_conversion", grant.unit, Direction.CREDIT, consumption.units_minor)
        legs.add("unit_conversion", grant.money, Direction.DEBIT, consumption.money_minor)
    legs.add(RECEIVABLE, grant.money, Direction.CREDIT, consumption.money_minor)
    return legs.required(
        "credits_applied", f"credits of grant {grant.grant_id} applied", (("grant_id", grant.grant_id),)
    )


def customer_balance_applied(customer_id: str, currency: Unit, amount_minor: int) -> Posting | None:
    legs = _Legs.of(customer_id)
    legs.add(BALANCE_ACCOUNT, currency, Direction.DEBIT, amount_minor)
    legs.add(RECEIVABLE, currency, Direction.CREDIT, amount_minor)
    return legs.posting("customer_balance_applied", "customer balance applied")


def customer_balance_credited(customer_id: str, currency: Unit, amount_minor: int) -> Posting | None:
    legs = _Legs.of(customer_id)
    legs.add(RECEIVABLE, currency, Direction.DEBIT, amount_minor)
    legs.add(BALANCE_ACCOUNT, currency, Direction.CREDIT, amount_minor)
    return legs.posting("customer_balance_credited", "negative invoice credited to the customer's balance")


def invoice_postings(proposal: Proposal) -> tuple[Posting, ...]:
    """Every posting of finalizing `proposal`, in order: the invoice, each grant's credits, the
    customer's balance. Afterwards the customer's receivable has grown by exactly the amount due."""
    postings: list[Posting | None] = [invoice_finalized(proposal)]
    postings.extend(credits_applied(proposal.customer_id, c) for c in proposal.credits.consumptions)
    totals = proposal.totals
    postings.append(customer_balance_applied(proposal.customer_id, proposal.currency, totals.balance_applied_minor))
    postings.append(customer_balance_credited(proposal.customer_id, proposal.currency, totals.balance_credited_minor))
    return tuple(posting for posting in postings if posting is not None)


def reversed_posting(posting: Posting, template: str) -> Posting:
    """The mirror image of `posting`: together they move nothing."""
    return Posting(
        template=template,
        entries=tuple(TemplateEntry(e.account, e.direction.opposite(), e.amount) for e in posting.entries),
        description=f"reversal of {posting.template}",
        metadata=(("reverses", posting.template),),
    )


def invoice_voided(postings: Sequence[Posting]) -> tuple[Posting, ...]:
    """A void undoes every posting of the invoice (credits go back to their grants, balance back)."""
    return tuple(reversed_posting(posting, "invoice_voided") for posting in reversed(postings))


# ----- credits -----------------------------------------------------------------------------------


# Where a prepaid grant's price is booked: owed on the receivable, or already paid (cash).
PREPAID_COUNTER_ACCOUNTS = frozenset({RECEIVABLE, "cash"})


def credits_granted(
    customer_id: str, grant: CreditGrant, *, price_minor: int | None = None, paid_into: str = RECEIVABLE
) -> Posting:
    """A grant takes effect. Prepaid: `price_minor` (default: the grant's value) is debited to
    `paid_into` — the receivable when the customer still owes it, cash when it was paid outside an
    invoice; promotional: the platform bears it as an expense of the grant's value."""
    if paid_into not in PREPAID_COUNTER_ACCOUNTS:
        raise InvariantViolation(f"a prepaid grant is paid into one of {sorted(PREPAID_COUNTER_ACCOUNTS)}")
    legs = _Legs.of(customer_id)
    legs.add(grant_account(grant.grant_id), grant.unit, Direction.CREDIT, grant.amount_minor)
    value = grant.money_value(grant.amount_minor)
    cost = value if price_minor is None or grant.kind is GrantKind.PROMOTIONAL else price_minor
    if grant.unit.is_custom:
        legs.add("unit_conversion", grant.unit, Direction.DEBIT, grant.amount_minor)
        legs.add("unit_conversion", grant.money, Direction.CREDIT, cost)
    elif cost != grant.amount_minor:
        raise InvariantViolation("a grant in money costs its amount")
    counter = paid_into if grant.kind is GrantKind.PREPAID else "promotions"
    legs.add(counter, grant.money, Direction.DEBIT, cost)
    return legs.required("credits_granted", f"{grant.kind} credits granted", (("grant_id", grant.grant_id),))


def credits_expired(customer_id: str, expiry: CreditExpiry) -> Posting:
    grant = expiry.grant
    legs = _Legs.of(customer_id)
    legs.add(grant_account(grant.grant_id), grant.unit, Direction.DEBIT, expiry.units_minor)
    if grant.unit.is_custom:
        legs.add("unit_conversion", grant.unit, Direction.CREDIT, expiry.units_minor)
        legs.add("unit_conversion", grant.money, Direction.DEBIT, expiry.money_minor)
    counter = "breakage_revenue" if grant.kind is GrantKind.PREPAID else "promotions"
    legs.add(counter, grant.money, Direction.CREDIT, expiry.money_minor)
    return legs.required("credits_expired", f"grant {grant.grant_id} expired", (("grant_id", grant.grant_id),))


# ----- payments and credit notes -----------------------------------------------------------------


def manual_payment_recorded(customer_id: str, outcome: PaymentOutcome) -> Posting:
    currency = outcome.payment.currency
    legs = _Legs.of(customer_id)
    legs.add("cash", currency, Direction.DEBIT, outcome.payment.amount_minor)
    legs.add(RECEIVABLE, currency, Direction.CREDIT, outcome.applied_minor)
    legs.add(BALANCE_ACCOUNT, currency, Direction.CREDIT, outcome.overpaid_minor)
    return legs.required(
        "manual_payment_recorded", "manual payment recorded", (("payment_id", outcome.payment.payment_id),)
    )


def credit_note_issued(customer_id: str, currency: Unit, outcome: CreditNoteOutcome) -> Posting:
    legs = _Legs.of(customer_id)
    for code, amount in outcome.by_account:
        legs.add(code, currency, Direction.DEBIT, amount)
    legs.add(RECEIVABLE, currency, Direction.CREDIT, outcome.against_due_minor)
    legs.add(BALANCE_ACCOUNT, currency, Direction.CREDIT, outcome.to_balance_minor)
    note = outcome.credit_note
    return legs.required(
        "credit_note_issued",
        f"credit note ({note.reason})",
        (("credit_note_id", note.credit_note_id), ("reason", note.reason.value)),
    )
