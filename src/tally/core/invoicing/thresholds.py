"""Threshold billing: invoice a subscription's usage as soon as it passes an amount, mid-period.

A subscription may carry a `BillingThreshold`: an amount in minor units of its currency. While
its usage periods are under way, their usage so far is measured (progressive readings) and
proposed by the same recompute-and-reconcile as every invoice (`reconciled_lines`). The lines of
those open periods — usage, caps and the discounts on them — are what is **accrued**: the usage so
far less what earlier threshold invoices of the same periods already carry (reconciliation takes
that difference, key by key). When a subscription's accrued amount reaches its threshold, those
lines, and only those, become a threshold invoice, settled like any invoice (credits, tax, the
customer's balance).

What is compared with the threshold is the accrued usage after discounts and caps, before credits
and tax: what the customer has consumed, in money, and not yet been invoiced for. Credits pay an
invoice; they do not make usage smaller. A minimum is never on a threshold invoice (a progressive
reading has none); it is billed with the period.

Nothing is lost or billed twice, because nothing here is special: the lines keep the keys of their
period (tiers apply to the whole period, so a graduated price crossing a tier between two threshold
invoices bills each unit at the tier it falls in), the period's closing reading recomputes the
whole period and bills only the rest, and the database's UNIQUE (key, sequence) refuses a second
evaluation racing the first. Σ threshold invoices + the period's invoice = the period's invoice
without thresholds, line key by line key (tax excepted: it is rounded once per invoice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tally.core.invoicing.context import SUBSCRIPTIONS_MAX, InvoiceContext
from tally.core.invoicing.lines import USAGE_KINDS, InvoiceLine, check_id
from tally.core.invoicing.proposal import Proposal, reconciled_lines, settle_lines
from tally.core.money import Unit
from tally.core.periods import Period
from tally.core.rejections import Rejected

# The largest threshold accepted, in minor units: far above any real one (10^13 dollars), far below
# what a ledger amount holds, so sums of thresholds and invoices never come near overflowing.
THRESHOLD_MINOR_MAX = 10**15
THRESHOLD_FIELD = "billing_threshold.amount_minor"


def check_threshold_amount(amount_minor: object) -> int:
    """A threshold amount: an int of minor units, 1 to `THRESHOLD_MINOR_MAX`."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise Rejected.because(
            "billing_threshold_must_be_minor_units",
            "a billing threshold is a whole number of minor units",
            THRESHOLD_FIELD,
        )
    if not 1 <= amount_minor <= THRESHOLD_MINOR_MAX:
        raise Rejected.because(
            "billing_threshold_out_of_range",
            f"a billing threshold is 1 to THRESHOLD_MINOR_MAX = {THRESHOLD_MINOR_MAX} minor units",
            THRESHOLD_FIELD,
        )
    return amount_minor


def check_threshold_currency(given: str | None, subscription_currency: str) -> None:
    """A threshold is in the subscription's currency; naming another one is refused, not converted."""
    if given is not None and given != subscription_currency:
        raise Rejected.because(
            "billing_threshold_currency_must_match_subscription",
            f"the subscription bills in {subscription_currency}, not {given}",
            "billing_threshold.currency",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingThreshold:
    """The threshold in force for one subscription."""

    subscription_id: str
    amount_minor: int
    currency: Unit

    def __post_init__(self) -> None:
        check_id(self.subscription_id, "subscription_id_invalid", "subscription_id")
        check_threshold_amount(self.amount_minor)


@dataclass(frozen=True, slots=True, kw_only=True)
class ThresholdAccrual:
    """One subscription's usage so far not yet invoiced, against its threshold."""

    subscription_id: str
    threshold_minor: int
    accrued_minor: int

    @property
    def crossed(self) -> bool:
        return self.accrued_minor >= self.threshold_minor


@dataclass(frozen=True, slots=True, kw_only=True)
class ThresholdDecision:
    accruals: tuple[ThresholdAccrual, ...]
    # The threshold invoice to issue now: the open periods' lines of every subscription whose
    # threshold is crossed. None when none is.
    proposal: Proposal | None


def decide_threshold_invoice(context: InvoiceContext, thresholds: Sequence[BillingThreshold]) -> ThresholdDecision:
    """The threshold invoice `context` calls for now, if any. `context` is gathered as the upcoming
    invoice is: closing readings for periods due, progressive readings for periods under way; only
    the lines of the latter (for subscriptions with a threshold) can be on a threshold invoice."""
    if len(thresholds) > SUBSCRIPTIONS_MAX:
        raise Rejected.because(
            "billing_thresholds_exceed_limit", f"at most {SUBSCRIPTIONS_MAX} thresholds per customer", "thresholds"
        )
    by_subscription: dict[str, BillingThreshold] = {}
    for threshold in thresholds:
        if threshold.subscription_id in by_subscription:
            raise Rejected.because(
                "billing_thresholds_must_be_distinct", "a subscription has one threshold in force", "thresholds"
            )
        if threshold.currency != context.currency:
            raise Rejected.because(
                "billing_threshold_currency_must_match_invoice",
                f"the threshold of {threshold.subscription_id} is in {threshold.currency.code}; "
                f"the invoice is in {context.currency.code}",
                "thresholds",
            )
        by_subscription[threshold.subscription_id] = threshold
    open_periods: set[tuple[str, str, Period]] = {
        (reading.subscription_id, reading.price_id, reading.period) for reading in context.usage if reading.progressive
    }
    lines, info = reconciled_lines(context)
    # The lines of open periods of subscriptions with a threshold, in invoice order, with their
    # subscription. A line at zero adds nothing (a price with no usage yet): its period's closing
    # reading shows it.
    selected: list[tuple[str, InvoiceLine]] = []
    for line in lines:
        base = line.key.discount_base() or line.key
        if (
            base.kind in USAGE_KINDS
            and base.subscription_id in by_subscription
            and (base.subscription_id, base.price_id, base.service_period) in open_periods
            and line.amount_minor != 0
        ):
            selected.append((base.subscription_id, line))
    accruals = tuple(
        ThresholdAccrual(
            subscription_id=subscription_id,
            threshold_minor=threshold.amount_minor,
            accrued_minor=sum((line.amount_minor for owner, line in selected if owner == subscription_id), 0),
        )
        for subscription_id, threshold in by_subscription.items()
    )
    crossed = {accrual.subscription_id for accrual in accruals if accrual.crossed}
    chosen = [line for owner, line in selected if owner in crossed]
    return ThresholdDecision(accruals=accruals, proposal=settle_lines(context, chosen, info) if chosen else None)
