"""`propose(context)`: recompute everything that should be billed, take away what was, emit the rest.

1. **Charges** — fees from the billing events, usage from the readings (rated per period and group,
   with the period's minimum and caps), one-off charges. Computed from scratch.
2. **Discounts** — from every redemption, on the effective charges (recomputed, or as billed when not
   recomputed), per line.
3. **Commitments** — the true-up of every commitment whose period has ended.
4. **Reconcile** — per key: total − billed so far; a non-zero difference is the key's next line
   (a first line is emitted even at zero, so free usage shows once). Keys billed before that are no
   longer due get a line taking back what they carry.
5. **Credits** — grants pay the new lines' positive nets (after their discounts), in burn-down order.
6. **Tax** — on each line's net after discounts and credits.
7. **Customer balance** — pays what remains; a negative total becomes balance instead.

Steps 1–4 are recomputed and reconciled, so proposing again after recording the result emits
nothing. Steps 5–7 apply to what this invoice adds; they are money movements of this invoice, not
lines to reconcile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from tally.core.frozen import quick_init
from tally.core.invoicing.charges import ChargeInfo, charge_info_for, charges
from tally.core.invoicing.commitments import true_up_lines
from tally.core.invoicing.context import InvoiceContext
from tally.core.invoicing.credits import CreditApplication, CreditDemand, GrantBalance, burn_down
from tally.core.invoicing.discounts import CouponSpan, DiscountableCharge, coupon_span, discount_lines
from tally.core.invoicing.lines import (
    CHARGE_KINDS,
    FEE_KINDS,
    USAGE_KINDS,
    ExpectedLine,
    Explanation,
    InvoiceLine,
    LineKey,
    LineKind,
)
from tally.core.invoicing.tax import TaxableLine, TaxLine, TaxRequest
from tally.core.money import AMOUNT_MINOR_MAX, Unit
from tally.core.rejections import Rejected, require

LINES_MAX = 10_000
# Kinds whose first line is shown even when it charges nothing (free usage, a free plan's fee).
_SHOWN_AT_ZERO = frozenset({LineKind.FIXED_FEE, LineKind.USAGE, LineKind.ONE_OFF})


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceTotals:
    subtotal_minor: int  # charges and commitment true-ups
    discount_minor: int  # the discount lines (negative when they take off)
    credits_minor: int  # paid by credit grants (positive)
    tax_minor: int
    total_minor: int  # subtotal + discount − credits + tax
    balance_applied_minor: int  # paid from the customer's balance
    balance_credited_minor: int  # a negative total, added to the customer's balance
    amount_due_minor: int

    def __post_init__(self) -> None:
        require(
            self.total_minor == self.subtotal_minor + self.discount_minor - self.credits_minor + self.tax_minor,
            "the total is the sum of its parts",
        )
        require(
            self.amount_due_minor == self.total_minor - self.balance_applied_minor + self.balance_credited_minor,
            "the amount due is the total less the balance applied",
        )
        require(
            min(self.credits_minor, self.balance_applied_minor, self.balance_credited_minor, self.amount_due_minor)
            >= 0,
            "these are never negative",
        )
        require(self.balance_credited_minor == 0 or self.amount_due_minor == 0, "a credited invoice owes nothing")
        if abs(self.total_minor) > AMOUNT_MINOR_MAX:
            raise Rejected.because("amount_exceeds_limit", "the invoice total does not fit a ledger amount", "lines")


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Proposal:
    customer_id: str
    currency: Unit
    through: datetime
    lines: tuple[InvoiceLine, ...]
    credits: CreditApplication
    tax: tuple[TaxLine, ...]
    totals: InvoiceTotals
    # Per line that charges (a base key), its net in this invoice after its discounts and credits:
    # what tax was computed on and what postings and credit notes split revenue by.
    nets: tuple[tuple[LineKey, str, int], ...]

    @property
    def is_empty(self) -> bool:
        return not self.lines


def propose(context: InvoiceContext) -> Proposal:
    """The invoice `context` calls for now: only what is not billed yet (see the module's steps)."""
    lines, info = reconciled_lines(context)
    return settle_lines(context, lines, info)


def reconciled_lines(context: InvoiceContext) -> tuple[list[InvoiceLine], dict[LineKey, ChargeInfo]]:
    """Steps 1–4: every line the context calls for (the difference per key), with what credits and
    postings need to know of each charge. `settle_lines` turns (a selection of) them into a proposal."""
    computed = charges(context)
    info: dict[LineKey, ChargeInfo] = dict(computed.info)
    expected: dict[LineKey, ExpectedLine] = {}
    for line in computed.lines:
        require(line.key not in expected, "charge keys are unique")
        expected[line.key] = line

    def in_scope(key: LineKey) -> bool:
        base = key.discount_base() or key
        if base.kind in FEE_KINDS:
            return context.subscription(base.subscription_id) is not None and base.service_start <= context.through
        if base.kind in USAGE_KINDS:
            usage_period = (base.subscription_id, base.price_id, base.service_period)
            return usage_period in computed.read or usage_period in computed.gone
        if base.kind is LineKind.ONE_OFF:
            return any(charge.charge_id == base.reference for charge in context.one_off_charges)
        if base.kind is LineKind.MINIMUM_COMMITMENT:
            return any(c.commitment_id == base.reference for c in context.commitments)
        return False

    billed_totals = {key: sum(line.amount_minor for line in lines) for key, lines in context.billed_by_key.items()}
    # Charges as they stand: recomputed where in scope, as billed elsewhere.
    effective_charges: dict[LineKey, int] = {key: line.amount_minor for key, line in expected.items()}
    for key, total in billed_totals.items():
        if key.kind in CHARGE_KINDS and not in_scope(key):
            effective_charges[key] = total
            found = charge_info_for(context, key)
            if found is not None:
                info.setdefault(key, found)

    discountable = [
        DiscountableCharge(
            key=key,
            amount_minor=amount,
            due_at=info[key].due_at,
            price=info[key].price,
            product=info[key].price.product,
            billing_period=info[key].billing_period,
            serves_from=info[key].serves_from,
        )
        for key, amount in effective_charges.items()
        if key in info
    ]
    discounts = discount_lines(discountable, context.redemptions, context.currency, _coupon_spans(context))
    effective: dict[LineKey, int] = dict(effective_charges)
    for key, total in billed_totals.items():
        if key.kind is LineKind.DISCOUNT and not in_scope(key):
            effective[key] = total
    for line in discounts:
        if in_scope(line.key):
            expected[line.key] = line
            effective[line.key] = line.amount_minor
    for line in true_up_lines(context.commitments, effective, context.through):
        expected[line.key] = line

    lines = _reconcile(context, expected, billed_totals, in_scope)
    if len(lines) > LINES_MAX:
        raise Rejected.because(
            "invoice_lines_exceed_limit", f"more than LINES_MAX = {LINES_MAX} lines; bill in shorter steps", "lines"
        )
    return lines, info


def _coupon_spans(context: InvoiceContext) -> dict[tuple[str, str], CouponSpan]:
    """Per (redemption, subscription) it covers, where its coupon periods lie; a redemption after
    `through` is not in effect yet and covers nothing."""
    spans: dict[tuple[str, str], CouponSpan] = {}
    for redemption in context.redemptions:
        if redemption.redeemed_at > context.through:
            continue
        for billing in context.subscriptions:
            if redemption.subscription_id in (None, billing.subscription_id):
                spans[(redemption.redemption_id, billing.subscription_id)] = coupon_span(redemption, billing.events)
    return spans


def _reconcile(
    context: InvoiceContext,
    expected: dict[LineKey, ExpectedLine],
    billed_totals: dict[LineKey, int],
    in_scope: Callable[[LineKey], bool],
) -> list[InvoiceLine]:
    keys = set(expected) | {key for key in billed_totals if in_scope(key)}
    lines: list[InvoiceLine] = []
    for key in sorted(keys, key=LineKey.sort_key):
        line = expected.get(key)
        prior = billed_totals.get(key, 0)
        sequence = len(context.billed_by_key.get(key, ()))
        total = line.amount_minor if line is not None else 0
        difference = total - prior
        first_shown = sequence == 0 and key.kind in _SHOWN_AT_ZERO and line is not None
        if difference == 0 and not first_shown:
            continue
        if line is None:
            due_at = key.service_start if key.kind in FEE_KINDS else key.service_end
            description = f"Correction: {key.kind.value} no longer due"
            explanation = Explanation(note="billed before and no longer due: what it carries is taken back")
            product = ""
        else:
            due_at, description, explanation, product = line.due_at, line.description, line.explanation, line.product
            if sequence > 0:
                description = f"Correction: {description}"
        lines.append(
            InvoiceLine(
                key=key,
                sequence=sequence,
                amount_minor=difference,
                amount_minor_total=total,
                amount_minor_billed_prior=prior,
                due_at=due_at,
                description=description,
                explanation=explanation,
                product=product,
            )
        )
    return lines


def settle_lines(
    context: InvoiceContext,
    lines: Sequence[InvoiceLine],
    info: dict[LineKey, ChargeInfo],
    *,
    grants: Sequence[GrantBalance] | None = None,
    balance_minor: int | None = None,
) -> Proposal:
    """Steps 5–7 for `lines` (some or all of `reconciled_lines`): credits, tax and the customer's
    balance. `grants` and `balance_minor` default to the context's; a second invoice computed in the
    same run passes what the first one left, so the two never count on the same credits."""
    grants = context.grants if grants is None else grants
    balance_minor = context.customer_balance_minor if balance_minor is None else balance_minor
    nets: dict[LineKey, int] = {}
    products: dict[LineKey, str] = {}
    for line in lines:
        base = line.key.discount_base() or line.key
        nets[base] = nets.get(base, 0) + line.amount_minor
        if line.key.kind is not LineKind.DISCOUNT or base not in products:
            products[base] = line.product
    order = list(nets)
    demands = []
    for base in order:
        if nets[base] <= 0:
            continue
        charge = info.get(base)
        demands.append(
            CreditDemand(
                key=base,
                kind=base.kind,
                price_id=base.price_id,
                catalog_price_id=charge.price.catalog_price_id if charge is not None else "",
                meter=charge.meter if charge is not None else "",
                amount_minor=nets[base],
            )
        )
    credits = burn_down(grants, demands, currency=context.currency, at=context.through)
    paid = credits.by_line()
    after_credits = [(base, products.get(base, ""), nets[base] - paid.get(base, 0)) for base in order]
    taxable = [TaxableLine(key=base, product=product, amount_minor=net) for base, product, net in after_credits]
    tax: tuple[TaxLine, ...] = ()
    if context.tax is not None and taxable:
        tax = context.tax.calculate(
            TaxRequest(
                customer_id=context.customer_id, currency=context.currency, at=context.through, lines=tuple(taxable)
            )
        )
    subtotal = _sum(line.amount_minor for line in lines if line.key.kind is not LineKind.DISCOUNT)
    discount = _sum(line.amount_minor for line in lines if line.key.kind is LineKind.DISCOUNT)
    tax_minor = _sum(line.amount_minor for line in tax)
    total = subtotal + discount - credits.money_minor + tax_minor
    balance_applied = min(balance_minor, max(0, total))
    totals = InvoiceTotals(
        subtotal_minor=subtotal,
        discount_minor=discount,
        credits_minor=credits.money_minor,
        tax_minor=tax_minor,
        total_minor=total,
        balance_applied_minor=balance_applied,
        balance_credited_minor=max(0, -total),
        amount_due_minor=max(0, total) - balance_applied,
    )
    return Proposal(
        customer_id=context.customer_id,
        currency=context.currency,
        through=context.through,
        lines=tuple(lines),
        credits=credits,
        tax=tax,
        totals=totals,
        nets=tuple(after_credits),
    )


def _sum(values: Iterable[int]) -> int:
    return sum(values, 0)
