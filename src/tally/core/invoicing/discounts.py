"""Coupons and the discount lines they produce.

A coupon is percent off or an amount off, for one period (`once`), for N periods (`repeating`) or
`forever`, optionally restricted to plans and prices. A redemption attaches it to a customer (every
subscription) or to one subscription, at a moment. A redemption is in effect from its moment on: a
proposal through an earlier moment ignores it.

**Coupon periods** are the subscription's own billing periods (`BillingEvents.invoice_cycle_at`:
its anchor at the shortest interval it holds, which is how often it is invoiced), counted from the
redemption, the same for every price. Coupon period 0 is the billing period that holds the
redemption (or starts at it); a redemption before a subscription starts counts from its start.
`once` covers coupon period 0, `repeating` N periods 0…N−1, `forever` every period from 0 on. The
grid is the one in force where the count starts, so a later plan change never moves it.

**Which period a line belongs to** is the start of what it serves, never when its price joined:

- a fee (in advance or in arrears): its service start — a whole period's fee, the prorated fee of a
  price added or raised mid-period (it belongs to the period of the change), a stub;
- usage, its minimum and cap: the start of the usage period, so usage of the last covered period,
  billed in arrears after the span, is still discounted;
- a fee credit (the unused part of a fee after a change): the fee it takes back, so a discount
  given is given back in the same proportion, and a fee never discounted is credited in full.

A fee of coupon period 0 charged before the redemption (redeemed mid-period) is discounted too: the
coupon covers that whole period, and the discount lands on the next invoice. One-off charges and
commitment true-ups are not discounted: a one-off's price is agreed as it is charged, and a
commitment's minimum is what the customer promised to spend.

**Stacking on one line.** Percent-off coupons first, then amount-off coupons; within each, in the
order of redemption (then redemption id). Each coupon sees the line as left by the coupons before
it. Percent first is the order more favourable to the customer (10 % of 100 then 10 off is 80;
the other way round it is 81), and the order Zuora and OpenMeter document; chaining is how
flexprice and Lago describe several coupons.

**Amount off** is an amount per coupon period, shared across the lines of that coupon period (of
every subscription the redemption covers) in due order (earliest first, then by key), never more
than the period's net charges. Filling in due order keeps the share of lines already billed stable
as later lines of the same period arrive.

A percent coupon discounts negative lines too (the credit for the unused part of a discounted fee
gives the discount back), so a discount never outlives what it discounted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from tally.core.frozen import quick_init
from tally.core.invoicing.lines import (
    CHARGE_KINDS,
    DiscountSource,
    ExpectedLine,
    Explanation,
    LineKey,
    LineKind,
    PriceSource,
    check_id,
    check_identifier,
)
from tally.core.money import AMOUNT_MINOR_MAX, COMPUTATION_CONTEXT, Unit, decimal_from_minor, round_to_unit
from tally.core.periods import Period
from tally.core.rejections import Rejected
from tally.core.subscriptions import BillingCycle, BillingEvents

COUPON_PERIODS_MAX = 1_200
PERCENT_MAX = Decimal(100)
_HUNDRED = Decimal(100)


class DurationKind(StrEnum):
    ONCE = "once"
    REPEATING = "repeating"
    FOREVER = "forever"


@dataclass(frozen=True, slots=True)
class CouponDuration:
    kind: DurationKind
    periods: int | None = None  # repeating only

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", DurationKind(self.kind))
        if self.kind is DurationKind.REPEATING:
            if isinstance(self.periods, bool) or not isinstance(self.periods, int):
                raise Rejected.because(
                    "duration_periods_required", "a repeating coupon says for how many periods", "duration.periods"
                )
            if not 1 <= self.periods <= COUPON_PERIODS_MAX:
                raise Rejected.because(
                    "duration_periods_out_of_range",
                    f"a coupon repeats for 1 to {COUPON_PERIODS_MAX} periods",
                    "duration.periods",
                )
        elif self.periods is not None:
            raise Rejected.because(
                "duration_periods_not_allowed", "only a repeating coupon counts periods", "duration.periods"
            )

    def covers(self, coupon_period: int) -> bool:
        match self.kind:
            case DurationKind.ONCE:
                return coupon_period == 0
            case DurationKind.REPEATING:
                return coupon_period < (self.periods or 0)
            case DurationKind.FOREVER:
                return True


@dataclass(frozen=True, slots=True, kw_only=True)
class Coupon:
    """Percent off (`percent_off`, 0 < p ≤ 100) or an amount off (`amount_off_minor` of `currency`)."""

    coupon_id: str
    duration: CouponDuration
    percent_off: Decimal | None = None
    amount_off_minor: int | None = None
    currency: Unit | None = None
    plan_ids: frozenset[str] = field(default_factory=frozenset)
    price_ids: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        check_identifier(self.coupon_id, "coupon_id_invalid", "coupon_id")
        if (self.percent_off is None) == (self.amount_off_minor is None):
            raise Rejected.because(
                "coupon_must_be_percent_or_amount", "a coupon has either percent_off or amount_off", "percent_off"
            )
        if self.percent_off is not None:
            if isinstance(self.percent_off, float):
                raise TypeError("float is never used for money; pass a Decimal")
            if not isinstance(self.percent_off, Decimal) or not self.percent_off.is_finite():
                raise Rejected.because(
                    "percent_off_out_of_range", "percent_off is a number above 0, at most 100", "percent_off"
                )
            if not Decimal(0) < self.percent_off <= PERCENT_MAX:
                raise Rejected.because(
                    "percent_off_out_of_range", "percent_off is above 0 and at most 100", "percent_off"
                )
            if self.currency is not None:
                raise Rejected.because("currency_not_allowed", "a percent-off coupon has no currency", "currency")
        if self.amount_off_minor is not None:
            if isinstance(self.amount_off_minor, bool) or not isinstance(self.amount_off_minor, int):
                raise TypeError("amount_off_minor is an int of minor units")
            if not 0 < self.amount_off_minor <= AMOUNT_MINOR_MAX:
                raise Rejected.because("amount_off_must_be_positive", "amount_off is above zero", "amount_off")
            if self.currency is None:
                raise Rejected.because("currency_required", "an amount-off coupon is in one currency", "currency")
        for name, ids in (("plan_ids", self.plan_ids), ("price_ids", self.price_ids)):
            if not isinstance(ids, frozenset):
                raise Rejected.because("value_must_be_set", f"{name} is a set of ids", name)
            for value in ids:
                check_id(value, "restriction_id_invalid", name)

    def check_currency(self, currency: Unit) -> None:
        """An amount-off coupon applies only to invoices in its own currency."""
        if self.currency is not None and self.currency != currency:
            raise Rejected.because(
                "coupon_currency_must_match_invoice",
                f"coupon {self.coupon_id} is in {self.currency.code}; the invoice is in {currency.code}",
                "coupon",
            )

    def applies_to(self, price: PriceSource) -> bool:
        if not self.plan_ids and not self.price_ids:
            return True
        return (
            price.plan_id in self.plan_ids
            or price.price_id in self.price_ids
            or price.catalog_price_id in self.price_ids
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Redemption:
    """A coupon applied to a customer (`subscription_id` None: all their subscriptions) or one subscription."""

    redemption_id: str
    coupon: Coupon
    redeemed_at: datetime
    subscription_id: str | None = None

    def __post_init__(self) -> None:
        check_identifier(self.redemption_id, "redemption_id_invalid", "redemption_id")
        if self.redeemed_at.tzinfo is None:
            raise Rejected.because("datetime_must_have_timezone", "redeemed_at needs a time zone", "redeemed_at")
        if self.subscription_id is not None:
            check_id(self.subscription_id, "subscription_id_invalid", "subscription_id")

    @property
    def order(self) -> tuple[int, datetime, str]:
        return (0 if self.coupon.percent_off is not None else 1, self.redeemed_at, self.redemption_id)


def redeem(
    coupon: Coupon, *, redemption_id: str, redeemed_at: datetime, currency: Unit, subscription_id: str | None = None
) -> Redemption:
    """A redemption for a customer billed in `currency`, refused when an amount-off coupon is in another."""
    coupon.check_currency(currency)
    return Redemption(
        redemption_id=redemption_id, coupon=coupon, redeemed_at=redeemed_at, subscription_id=subscription_id
    )


@dataclass(frozen=True, slots=True)
class CouponSpan:
    """Where a redemption's coupon periods lie on one subscription: coupon period 0 is period
    `first` of `cycle`, coupon period i is period `first + i`."""

    cycle: BillingCycle
    first: int

    def coupon_period(self, moment: datetime) -> int | None:
        """The coupon period that holds `moment`; None before coupon period 0."""
        index = self.cycle.index_of(moment) - self.first
        return index if index >= 0 else None


def coupon_span(redemption: Redemption, events: BillingEvents) -> CouponSpan:
    """The coupon periods of `redemption` on the subscription of `events`: counted from the billing
    period that holds the redemption, or from the subscription's start when it is redeemed before."""
    counted_from = max(redemption.redeemed_at, events.started_at)
    cycle = events.invoice_cycle_at(counted_from)
    return CouponSpan(cycle=cycle, first=cycle.index_of(counted_from))


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class DiscountableCharge:
    """A charge line as discounts see it: its effective total and what places it in a coupon period."""

    key: LineKey
    amount_minor: int
    due_at: datetime
    price: PriceSource
    product: str
    billing_period: Period
    # The start of what the line serves (see the module's rules): its coupon period holds this moment.
    serves_from: datetime


def discount_lines(
    charges: Sequence[DiscountableCharge],
    redemptions: Sequence[Redemption],
    currency: Unit,
    spans: Mapping[tuple[str, str], CouponSpan],
) -> list[ExpectedLine]:
    """Every discount line the redemptions give the charges, from scratch (see the module's rules).

    `spans` holds, per (redemption id, subscription id), where the redemption's coupon periods lie
    on that subscription; a redemption without a span for a subscription discounts none of it (it
    is not in effect yet)."""
    remaining = {charge.key: charge.amount_minor for charge in charges}
    ordered_charges = sorted(charges, key=lambda charge: (charge.due_at, charge.key.sort_key()))
    lines: list[ExpectedLine] = []
    for redemption in sorted(redemptions, key=lambda r: r.order):
        coupon = redemption.coupon
        coupon.check_currency(currency)
        eligible: list[tuple[DiscountableCharge, int]] = []
        for charge in ordered_charges:
            if charge.key.kind not in CHARGE_KINDS or charge.key.kind is LineKind.ONE_OFF:
                continue
            if redemption.subscription_id is not None and redemption.subscription_id != charge.key.subscription_id:
                continue
            if not coupon.applies_to(charge.price):
                continue
            span = spans.get((redemption.redemption_id, charge.key.subscription_id))
            index = None if span is None else span.coupon_period(charge.serves_from)
            if index is None or not coupon.duration.covers(index):
                continue
            eligible.append((charge, index))
        taken: list[tuple[DiscountableCharge, int, int, int]] = []  # charge, period, base, discount
        if coupon.percent_off is not None:
            rate = COMPUTATION_CONTEXT.divide(coupon.percent_off, _HUNDRED)
            for charge, index in eligible:
                base = remaining[charge.key]
                off = round_to_unit(COMPUTATION_CONTEXT.multiply(decimal_from_minor(base, currency), rate), currency)
                taken.append((charge, index, base, off))
        else:
            amount_off = coupon.amount_off_minor or 0
            by_period: dict[int, list[DiscountableCharge]] = {}
            for charge, index in eligible:
                by_period.setdefault(index, []).append(charge)
            for index, members in sorted(by_period.items()):
                budget = min(amount_off, max(0, sum(remaining[charge.key] for charge in members)))
                for charge in members:  # already in due order
                    base = remaining[charge.key]
                    off = min(budget, base) if base > 0 else 0
                    budget -= off
                    taken.append((charge, index, base, off))
        for charge, index, base, off in taken:
            if off == 0:
                continue
            remaining[charge.key] = base - off
            lines.append(
                ExpectedLine(
                    key=charge.key.discounted_by(redemption.redemption_id),
                    amount_minor=-off,
                    due_at=charge.due_at,
                    description=f"Discount ({coupon.coupon_id})",
                    product=charge.product,
                    explanation=Explanation(
                        price=charge.price,
                        billing_period=charge.billing_period,
                        discount=DiscountSource(
                            coupon_id=coupon.coupon_id,
                            redemption_id=redemption.redemption_id,
                            percent_off=coupon.percent_off,
                            amount_off_minor=coupon.amount_off_minor,
                            coupon_period=index,
                            base_amount_minor=base,
                        ),
                    ),
                )
            )
    return lines
