"""Named posting templates: the only way business code writes to the ledger.

A template turns a business event into the entries of one transaction, by chart code. The writer
resolves codes to accounts (creating chart accounts on demand). Every template's entries can be
reversed by `model.reversal_entries`, so a correction is always "the same template, backwards".

Later issues add templates here (invoice_finalized, credits_applied, payment_captured, ...); each
one is a function of a frozen input returning a `Posting`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tally.core.frozen import quick_init
from tally.core.ledger.model import Direction
from tally.core.rejections import require


@quick_init
@dataclass(frozen=True, slots=True)
class AccountRef:
    """An account named by role: chart code, unit, and the customer for customer accounts."""

    code: str
    unit_code: str
    customer_id: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class TemplateEntry:
    account: AccountRef
    direction: Direction
    amount: int


@dataclass(frozen=True, slots=True)
class Posting:
    template: str
    entries: tuple[TemplateEntry, ...]
    description: str = ""
    metadata: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        # Templates are code, not input: an unbalanced template is a bug, not a rejection.
        net: dict[str, int] = {}
        for entry in self.entries:
            signed = entry.amount if entry.direction is Direction.DEBIT else -entry.amount
            net[entry.account.unit_code] = net.get(entry.account.unit_code, 0) + signed
        require(all(value == 0 for value in net.values()), f"template {self.template} must balance")
        require(all(entry.amount > 0 for entry in self.entries), f"template {self.template} amounts are positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditsPurchased:
    customer_id: str
    unit_code: str
    amount: int


def credits_purchased(event: CreditsPurchased) -> Posting:
    """Prepaid credits bought on account: receivable now, a credit liability the customer can spend."""
    return Posting(
        template="credits_purchased",
        entries=(
            TemplateEntry(
                AccountRef("accounts_receivable", event.unit_code, event.customer_id),
                Direction.DEBIT,
                event.amount,
            ),
            TemplateEntry(
                AccountRef("customer_credit", event.unit_code, event.customer_id),
                Direction.CREDIT,
                event.amount,
            ),
        ),
        description="prepaid credits purchased",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PromotionalCreditsGranted:
    customer_id: str
    unit_code: str
    amount: int


def promotional_credits_granted(event: PromotionalCreditsGranted) -> Posting:
    """Free credits: an expense for the platform, a credit liability to the customer."""
    return Posting(
        template="promotional_credits_granted",
        entries=(
            TemplateEntry(AccountRef("promotions", event.unit_code), Direction.DEBIT, event.amount),
            TemplateEntry(
                AccountRef("customer_credit", event.unit_code, event.customer_id),
                Direction.CREDIT,
                event.amount,
            ),
        ),
        description="promotional credits granted",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditsApplied:
    customer_id: str
    unit_code: str
    amount: int


def credits_applied(event: CreditsApplied) -> Posting:
    """A customer's credit balance pays down what they owe. Posted pending, it is a hold on credits."""
    return Posting(
        template="credits_applied",
        entries=(
            TemplateEntry(
                AccountRef("customer_credit", event.unit_code, event.customer_id), Direction.DEBIT, event.amount
            ),
            TemplateEntry(
                AccountRef("accounts_receivable", event.unit_code, event.customer_id), Direction.CREDIT, event.amount
            ),
        ),
        description="credits applied",
    )
