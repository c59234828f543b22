"""Late usage: where the difference for a usage period already billed in full goes.

A usage period billed in full on a finalized invoice is measured again for a while (late events,
retractions, amendments). Reconciling then emits correction lines for it (`reconciled_lines`). The
tenant's `LateUsagePolicy` says where they go:

- `next_invoice` (the default): with everything else, on the customer's next invoice;
- `separate`: per period, a difference that charges more becomes a line of an **extra invoice**
  (its own draft, finalized like any invoice); one that charges less becomes part of a **credit
  note** against the invoice that billed the period in full, for the lines' net with its tax. A
  credit note is never more than the invoice can still credit: when the invoice's creditable amount
  is short (or the invoice is unknown), that invoice's lines stay on the next invoice instead, whole.

A **late line** is a line whose base key (the discounted line for a discount) is usage, its usage
minimum or cap, for a (subscription, price, period) that has a reading in the context (measured
again) and a line billed from a closing reading before. A period never billed in full (or billed
only from a progressive reading, as threshold billing does) is not late: its rest is ordinary
billing. A period no longer due (a backdated cancel) is not measured again, so its take-back is not
late usage either. Commitment true-ups that late usage moves stay on the next invoice.

Resources are not counted twice: the next invoice is settled first, with the customer's credit
grants and balance; the extra invoice gets what it left. A credit note uses neither (it takes back).
Keys never move between targets within a run, and every late line lands in exactly one target, so
the lines of a key still add up to what one proposal from scratch computes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tally.core.invoicing.charges import ChargeInfo
from tally.core.invoicing.context import InvoiceContext
from tally.core.invoicing.credits import GrantBalance
from tally.core.invoicing.lines import USAGE_KINDS, InvoiceLine, LineKey, LineKind
from tally.core.invoicing.proposal import Proposal, reconciled_lines, settle_lines
from tally.core.periods import Period
from tally.core.rejections import Rejected, require
from tally.core.subscriptions import ItemKind

UsagePeriod = tuple[str, str, Period]  # (subscription id, price id, billing period)


class LateUsagePolicy(StrEnum):
    NEXT_INVOICE = "next_invoice"
    SEPARATE = "separate"


LATE_USAGE_POLICY_DEFAULT = LateUsagePolicy.NEXT_INVOICE


def parse_late_usage_policy(value: object) -> LateUsagePolicy:
    """The policy named `value`, else the rejection `late_usage_policy_unknown`."""
    if isinstance(value, str) and value in LateUsagePolicy._value2member_map_:
        return LateUsagePolicy(value)
    raise Rejected.because(
        "late_usage_policy_unknown", f"late_usage_policy is one of {', '.join(LateUsagePolicy)}", "late_usage_policy"
    )


@dataclass(frozen=True, slots=True)
class LateCredit:
    """Late lines that charge less, credited against the invoice that billed their periods."""

    invoice_id: str
    lines: tuple[InvoiceLine, ...]
    settled: Proposal  # the lines with their tax: `amount_minor` is what it takes back
    amount_minor: int  # > 0

    def __post_init__(self) -> None:
        require(self.amount_minor > 0, "a late credit takes back something")
        require(self.amount_minor == -self.settled.totals.total_minor, "a late credit is its lines' net with tax")


@dataclass(frozen=True, slots=True)
class LateUsageSplit:
    regular: Proposal  # the next invoice (the customer's ordinary draft)
    extra: Proposal  # the extra invoice of late usage (empty unless `separate`)
    credits: tuple[LateCredit, ...]  # one per invoice credited (none unless `separate`)

    @property
    def lines(self) -> tuple[InvoiceLine, ...]:
        return (
            *self.regular.lines,
            *self.extra.lines,
            *(line for credit in self.credits for line in credit.lines),
        )


@dataclass(frozen=True, slots=True)
class Reconciled:
    """`reconciled_lines` of a context, before they are settled onto one or more targets."""

    context: InvoiceContext
    lines: tuple[InvoiceLine, ...]
    info: Mapping[LineKey, ChargeInfo]

    def late_periods(self) -> dict[UsagePeriod, str]:
        """Each usage period some late line is about, with the invoice that billed it in full ("" if
        the billed lines do not say)."""
        read = {
            (reading.subscription_id, reading.price_id, reading.period)
            for reading in self.context.usage
            if not reading.progressive
        }
        billed_in_full: dict[UsagePeriod, tuple[int, str]] = {}
        for key, billed in self.context.billed_by_key.items():
            if key.kind is not LineKind.USAGE:
                continue
            billed_period = (key.subscription_id, key.price_id, key.service_period)
            for billed_line in billed:
                if billed_line.provisional:
                    continue
                found = billed_in_full.get(billed_period)
                if found is None or (billed_line.sequence, billed_line.invoice_id) < found:
                    billed_in_full[billed_period] = (billed_line.sequence, billed_line.invoice_id)
        periods: dict[UsagePeriod, str] = {}
        for line in self.lines:
            period = _usage_period(line)
            if period is not None and period in read and period in billed_in_full:
                periods[period] = billed_in_full[period][1]
        return periods

    def credit_invoices(self) -> tuple[str, ...]:
        """The invoices a `separate` split may credit: ask for what each can still credit."""
        periods = self.late_periods()
        nets = _nets(self.lines, periods)
        return tuple(sorted({periods[period] for period, net in nets.items() if net < 0 and periods[period]}))

    def split(self, policy: LateUsagePolicy, creditable: Mapping[str, int] | None = None) -> LateUsageSplit:
        """Settle the lines onto their targets under `policy`; `creditable`: what each invoice of
        `credit_invoices()` can still credit (an invoice missing from it credits nothing)."""
        context, info = self.context, dict(self.info)
        if policy is LateUsagePolicy.NEXT_INVOICE:
            empty = settle_lines(context, [], info, grants=(), balance_minor=0)
            return LateUsageSplit(settle_lines(context, list(self.lines), info), empty, ())
        creditable = creditable or {}
        periods = self.late_periods()
        nets = _nets(self.lines, periods)
        extra_periods = {period for period, net in nets.items() if net > 0}
        by_invoice: dict[str, list[InvoiceLine]] = {}
        regular: list[InvoiceLine] = []
        extra: list[InvoiceLine] = []
        for line in self.lines:
            period = _usage_period(line)
            if period is None or period not in nets:
                regular.append(line)
            elif period in extra_periods:
                extra.append(line)
            elif nets[period] < 0 and periods[period]:
                by_invoice.setdefault(periods[period], []).append(line)
            else:
                regular.append(line)
        credits: list[LateCredit] = []
        for invoice_id in sorted(by_invoice):
            lines = by_invoice[invoice_id]
            settled = settle_lines(context, lines, info, grants=(), balance_minor=0)
            amount = -settled.totals.total_minor
            if 0 < amount <= creditable.get(invoice_id, 0):
                credits.append(LateCredit(invoice_id, tuple(lines), settled, amount))
            else:
                regular.extend(lines)  # not creditable in full: the next invoice carries it
        regular.sort(key=lambda line: line.key.sort_key())
        first = settle_lines(context, regular, info)
        left = {
            consumption.grant.grant_id: consumption.remaining_after_minor for consumption in first.credits.consumptions
        }
        grants = tuple(
            GrantBalance(grant=balance.grant, remaining_minor=left.get(balance.grant.grant_id, balance.remaining_minor))
            for balance in context.grants
        )
        balance_left = context.customer_balance_minor - first.totals.balance_applied_minor
        second = settle_lines(context, extra, info, grants=grants, balance_minor=balance_left)
        return LateUsageSplit(first, second, tuple(credits))


def reconcile(context: InvoiceContext) -> Reconciled:
    lines, info = reconciled_lines(context)
    return Reconciled(context, tuple(lines), info)


def _usage_period(line: InvoiceLine) -> UsagePeriod | None:
    base = line.key.discount_base() or line.key
    if base.kind not in USAGE_KINDS:
        return None
    return (base.subscription_id, base.price_id, base.service_period)


def _nets(lines: tuple[InvoiceLine, ...], periods: Mapping[UsagePeriod, str]) -> dict[UsagePeriod, int]:
    """Per late period, what its lines add up to (before tax)."""
    nets: dict[UsagePeriod, int] = {}
    for line in lines:
        period = _usage_period(line)
        if period is not None and period in periods:
            nets[period] = nets.get(period, 0) + line.amount_minor
    return nets


# ----- resolving late usage flags ------------------------------------------------------------------

NO_CHANGE = "no_change"
BEYOND_HORIZON = "beyond_horizon"


@dataclass(frozen=True, slots=True)
class LateFlag:
    """A `late_usage` flag: an event of the customer at `timestamp` arrived (or changed) after its
    period was invoiced."""

    flag_id: str
    timestamp: datetime


def flag_resolutions(
    context: InvoiceContext, flags: Sequence[LateFlag], placed: Sequence[tuple[InvoiceLine, str]]
) -> dict[str, str]:
    """What resolves each flag after a run over `context` placed its lines (`placed`: each line
    with its target, e.g. `invoice:<id>` or `credit_note:<id>`). A flag absent from the answer stays
    open: its event lies in a usage period still under way, which will bill it as usual.

    For the usage periods (of any subscription and usage price) holding the flag's event:
    - some period was measured again by this run: the target of the lines of those periods (the one
      carrying the largest amount when there are several), or `no_change` when recomputing billed
      no difference (a free tier, a meter that does not count the event, an amend to the same value);
    - none measured, but one still under way: left open;
    - none measured and all ended: they were billed in full longer ago than the run measures again,
      `beyond_horizon` (the app measures every period holding an open flag again, so this is a
      safety net the integrity check reports, not a path);
    - no usage period holds it at all (no subscription then): `no_change`, nothing is billable.
    """
    read = {
        (reading.subscription_id, reading.price_id, reading.period)
        for reading in context.usage
        if not reading.progressive
    }
    periods: list[UsagePeriod] = [
        (billing.subscription_id, held.price_id, period)
        for billing in context.subscriptions
        for held in billing.events.periods
        if held.kind is ItemKind.USAGE
        for period in held.periods
    ]
    targets: dict[UsagePeriod, dict[str, int]] = {}
    for line, target in placed:
        period = _usage_period(line)
        if period is not None:
            by_target = targets.setdefault(period, {})
            by_target[target] = by_target.get(target, 0) + abs(line.amount_minor)
    answers: dict[str, str] = {}
    for flag in flags:
        holding = [period for period in periods if period[2].start <= flag.timestamp < period[2].end]
        measured = [period for period in holding if period in read]
        if measured:
            weights: dict[str, int] = {}
            for period in measured:
                for target, amount in targets.get(period, {}).items():
                    weights[target] = weights.get(target, 0) + amount
            answers[flag.flag_id] = max(sorted(weights), key=lambda target: weights[target]) if weights else NO_CHANGE
        elif any(period[2].end > context.through for period in holding):
            continue
        else:
            answers[flag.flag_id] = BEYOND_HORIZON if holding else NO_CHANGE
    return answers
