"""The charge lines a context should carry in total: fees, usage (with minimums and caps), one-offs.

Everything here is computed from scratch; `proposal.py` takes the difference with what was billed.
Each amount is rounded exactly once, on the line, in the price's rounding mode.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tally.core.frozen import quick_init
from tally.core.invoicing.commitments import PriceCap
from tally.core.invoicing.context import InvoiceContext, OneOffCharge, PriceRef, SubscriptionBilling, UsageReading
from tally.core.invoicing.lines import (
    FEE_KINDS,
    USAGE_KINDS,
    ExpectedLine,
    Explanation,
    LineKey,
    LineKind,
    PriceSource,
    UsageSource,
)
from tally.core.money import AMOUNT_MINOR_MAX, COMPUTATION_CONTEXT, round_to_unit
from tally.core.periods import Period
from tally.core.rating import Quantity, rate
from tally.core.rating.models import FlatFee
from tally.core.rating.rate import EXACT
from tally.core.rejections import InvariantViolation, Rejected
from tally.core.subscriptions import BillingEvent, BillingEventKind

_ZERO = Decimal(0)


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class ChargeInfo:
    """What discounts, credits and postings need to know of a charge line beyond its amount."""

    price: PriceSource
    meter: str
    billing_period: Period
    # The start of what the line serves, which places it in a coupon period: a fee's service
    # start, a usage period's start, and for a fee credit the service start of the fee it takes back.
    serves_from: datetime
    due_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Charges:
    lines: tuple[ExpectedLine, ...]
    info: dict[LineKey, ChargeInfo]
    # The usage periods (subscription, price, period) re-rated from a reading.
    read: frozenset[tuple[str, str, Period]]
    # Usage periods billed before that the subscription no longer bills at all (a backdated cancel
    # or pause): what they carry is taken back.
    gone: frozenset[tuple[str, str, Period]]


class _Lookups:
    """What `charges` asks of a context again and again, derived once per call: each subscription's
    price periods and due usage windows, and which usage periods were billed in full. (Scanning
    the events or the billed lines for each line instead grows with their product.)"""

    def __init__(self, context: InvoiceContext) -> None:
        self._periods: dict[str, dict[str, tuple[Period, ...]]] = {}
        self._held: dict[tuple[str, str], frozenset[Period]] = {}
        self._windows: dict[str, dict[tuple[str, Period], list[Period]]] = {}
        self.billed_in_full = {
            (key.subscription_id, key.price_id, key.service_period)
            for key, billed in context.billed_by_key.items()
            if key.kind is LineKind.USAGE and not billed[-1].provisional
        }

    def periods(self, billing: SubscriptionBilling) -> dict[str, tuple[Period, ...]]:
        """The periods of each price of `billing`."""
        found = self._periods.get(billing.subscription_id)
        if found is None:
            found = self._periods[billing.subscription_id] = {p.price_id: p.periods for p in billing.events.periods}
        return found

    def held(self, billing: SubscriptionBilling, price_id: str) -> frozenset[Period]:
        """The periods of `price_id` in `billing`."""
        key = (billing.subscription_id, price_id)
        found = self._held.get(key)
        if found is None:
            found = self._held[key] = frozenset(self.periods(billing).get(price_id, ()))
        return found

    def windows(self, billing: SubscriptionBilling) -> dict[tuple[str, Period], list[Period]]:
        """The service periods of the usage events of `billing` by (price, period), in the events'
        order; the keys in order of their first event."""
        found = self._windows.get(billing.subscription_id)
        if found is None:
            found = {}
            for event in billing.events.events:
                if event.kind is BillingEventKind.USAGE:
                    found.setdefault((event.price_id, event.period), []).append(event.service_period)
            self._windows[billing.subscription_id] = found
        return found


def charges(context: InvoiceContext) -> Charges:
    lines: list[ExpectedLine] = []
    info: dict[LineKey, ChargeInfo] = {}
    read: set[tuple[str, str, Period]] = set()
    readings = _readings_by_period(context)
    lookups = _Lookups(context)
    for billing in context.subscriptions:
        # The service start of the latest fee charged per (price, period): what a credit takes back.
        # Events come in due order with a credit before the charge that replaces it at one moment.
        charged: dict[tuple[str, Period], datetime] = {}
        for event in billing.events.events:
            if event.kind in (BillingEventKind.FIXED_FEE, BillingEventKind.FIXED_FEE_CREDIT):
                line = _fee_line(context, billing, event)
                lines.append(line)
                serves_from = event.service_period.start
                if event.kind is BillingEventKind.FIXED_FEE:
                    charged[(event.price_id, event.period)] = serves_from
                else:
                    serves_from = _taken_back(charged, event.price_id, event.period, event.service_period.start)
                info[line.key] = _info(billing, event.price_id, event.period, serves_from, line.due_at)
        for price_id, period in lookups.windows(billing):
            if (billing.subscription_id, price_id, period) in readings:
                continue
            if (billing.subscription_id, price_id, period) not in lookups.billed_in_full:
                raise Rejected.because(
                    "usage_reading_missing",
                    f"usage of {price_id} in {billing.subscription_id} for [{period.start}, {period.end}) is due "
                    "and was never billed in full: give a reading (zero when there was no usage)",
                    "usage",
                )
    for (subscription_id, price_id, period), group_readings in readings.items():
        reading_billing = context.subscription(subscription_id)
        if reading_billing is None:
            raise Rejected.because("usage_reading_subscription_unknown", f"no subscription {subscription_id}", "usage")
        for line in _usage_lines(context, reading_billing, price_id, period, group_readings, lookups):
            lines.append(line)
            info[line.key] = _info(reading_billing, price_id, period, period.start, line.due_at)
        read.add((subscription_id, price_id, period))
    for charge in context.one_off_charges:
        line = _one_off_line(context, charge)
        lines.append(line)
        moment = Period(charge.at, charge.at)
        info[line.key] = ChargeInfo(
            price=charge.price.source(), meter="", billing_period=moment, serves_from=charge.at, due_at=charge.at
        )
    return Charges(lines=tuple(lines), info=info, read=frozenset(read), gone=frozenset(_gone(context, lookups)))


def _gone(context: InvoiceContext, lookups: _Lookups) -> set[tuple[str, str, Period]]:
    """Billed usage periods with no usage to bill any more: the price is not held in the period at
    all, or the period is over and none of it was a usage window. (A period still under way and
    held, say billed by a threshold, stays as billed.)"""
    gone: set[tuple[str, str, Period]] = set()
    for key in context.billed_by_key:
        if key.kind not in USAGE_KINDS:
            continue
        billing = context.subscription(key.subscription_id)
        if billing is None:
            continue
        period = key.service_period
        held = lookups.held(billing, key.price_id)
        windows = (key.price_id, period) in lookups.windows(billing)
        if period.start <= context.through and (period not in held or (period.end <= context.through and not windows)):
            gone.add((key.subscription_id, key.price_id, period))
    return gone


def _taken_back(charged: dict[tuple[str, Period], datetime], price_id: str, period: Period, at: datetime) -> datetime:
    """The service start of the fee a credit at `at` takes back: the latest charged before it in
    the period. A credit without one is a bug in the billing events."""
    found = charged.get((price_id, period))
    if found is None or found >= at:
        raise InvariantViolation(f"a fee credit of {price_id} at {at} takes back no fee charged before it")
    return found


def charge_info_for(context: InvoiceContext, key: LineKey) -> ChargeInfo | None:
    """The info of a charge line billed before and not recomputed now (its usage was not re-read)."""
    billing = context.subscription(key.subscription_id)
    if billing is None or key.kind not in FEE_KINDS | USAGE_KINDS:
        return None
    try:
        ref = billing.price(key.price_id)
    except Rejected:
        return None
    periods = {p.price_id: p.periods for p in billing.events.periods}.get(key.price_id, ())
    billing_period = next(
        (p for p in periods if p.start <= key.service_start < p.end or p == key.service_period), key.service_period
    )
    due_at = key.service_start if key.kind in FEE_KINDS else key.service_end
    serves_from = key.service_start
    if key.kind is LineKind.FIXED_FEE_CREDIT:
        charged = [
            event.service_period.start
            for event in billing.events.events
            if event.kind is BillingEventKind.FIXED_FEE
            and event.price_id == key.price_id
            and event.period == billing_period
            and event.service_period.start < key.service_start
        ]
        serves_from = max(charged, default=billing_period.start)
    return ChargeInfo(
        price=ref.source(),
        meter=ref.price.meter or "",
        billing_period=billing_period,
        serves_from=serves_from,
        due_at=due_at,
    )


def _info(
    billing: SubscriptionBilling, price_id: str, period: Period, serves_from: datetime, due_at: datetime
) -> ChargeInfo:
    ref = billing.price(price_id)
    return ChargeInfo(
        price=ref.source(),
        meter=ref.price.meter or "",
        billing_period=period,
        serves_from=serves_from,
        due_at=due_at,
    )


def _fee_line(context: InvoiceContext, billing: SubscriptionBilling, event: BillingEvent) -> ExpectedLine:
    ref = billing.price(event.price_id)
    exact = event.amount if event.amount is not None else _ZERO
    credit = event.kind is BillingEventKind.FIXED_FEE_CREDIT
    kind = LineKind.FIXED_FEE_CREDIT if credit else LineKind.FIXED_FEE
    prorated = event.proration is not None and not event.proration.is_full
    what = f"{ref.name} × {event.quantity}"
    description = f"Unused time on {what}" if credit else (f"{what} (prorated)" if prorated else what)
    return ExpectedLine(
        key=LineKey(
            billing.subscription_id,
            event.price_id,
            event.service_period.start,
            event.service_period.end,
            (),
            kind,
        ),
        amount_minor=round_to_unit(exact, context.currency, ref.price.rounding),
        due_at=event.due_at,
        description=description,
        product=ref.product,
        explanation=Explanation(
            price=ref.source(),
            billing_period=event.period,
            quantity=None if event.quantity is None else Decimal(event.quantity),
            unit_amount=event.unit_amount,
            proration=event.proration,
            exact_amount=exact,
            rounding=ref.price.rounding,
        ),
    )


def _readings_by_period(context: InvoiceContext) -> dict[tuple[str, str, Period], list[UsageReading]]:
    by_period: dict[tuple[str, str, Period], list[UsageReading]] = {}
    for reading in context.usage:
        by_period.setdefault((reading.subscription_id, reading.price_id, reading.period), []).append(reading)
    return by_period


def _usage_lines(  # noqa: PLR0917 - a private step of `charges`
    context: InvoiceContext,
    billing: SubscriptionBilling,
    price_id: str,
    period: Period,
    readings: Sequence[UsageReading],
    lookups: _Lookups,
) -> list[ExpectedLine]:
    ref = billing.price(price_id)
    if ref.price.meter is None:
        raise Rejected.because("usage_reading_price_must_be_metered", f"{price_id} is not a usage price", "usage")
    if period not in lookups.held(billing, price_id):
        raise Rejected.because(
            "usage_reading_period_unknown", f"[{period.start}, {period.end}) is not a period of {price_id}", "usage"
        )
    if len({reading.group for reading in readings}) != len(readings):
        raise Rejected.because(
            "usage_groups_must_be_distinct", "two readings of one period have the same group", "usage"
        )
    first = readings[0]
    if any(
        r.windows != first.windows
        or r.progressive != first.progressive
        or (r.meter_version, r.meter_version_id) != (first.meter_version, first.meter_version_id)
        for r in readings
    ):
        raise Rejected.because(
            "usage_readings_must_agree",
            "the readings of one period share their windows, progressive flag and meter version",
            "usage",
        )
    due = tuple(sorted(lookups.windows(billing).get((price_id, period), ()), key=lambda window: window.start))
    windows = tuple(sorted(first.windows, key=lambda window: window.start))
    if not windows or (not first.progressive and windows != due):
        raise Rejected.because(
            "usage_windows_must_match_billing_events",
            "a closing reading measures exactly the due usage windows of its period",
            "usage.windows",
        )
    closed = not first.progressive and (period.end <= context.through or billing.events.next_due_at is None)
    # Minimum and maximum apply to the whole period (all groups together), so groups are rated
    # without them and the period's adjustment is its own line.
    price = ref.price
    bare = price
    if price.minimum_amount is not None or price.maximum_amount is not None:
        bare = dataclasses.replace(price, minimum_amount=None, maximum_amount=None)
    due_at = windows[-1].end
    lines: list[ExpectedLine] = []
    exact_total = _ZERO
    for reading in sorted(readings, key=lambda r: tuple((v is not None, v or "") for v in r.group)):
        rating = rate(bare, reading.usage)
        exact_total = COMPUTATION_CONTEXT.add(exact_total, rating.amount)
        group_text = "" if not reading.group else " (" + ", ".join(v or "—" for v in reading.group) + ")"
        lines.append(
            ExpectedLine(
                key=LineKey(billing.subscription_id, price_id, period.start, period.end, reading.group, LineKind.USAGE),
                amount_minor=rating.amount_minor,
                due_at=due_at,
                description=f"{ref.name} usage{group_text}",
                product=ref.product,
                explanation=Explanation(
                    price=ref.source(),
                    billing_period=period,
                    quantity=rating.quantity,
                    rating=rating,
                    usage=UsageSource(
                        meter=ref.price.meter,
                        meter_version=reading.meter_version,
                        meter_version_id=reading.meter_version_id,
                        windows=windows,
                        group=reading.group,
                        progressive=first.progressive,
                    ),
                    exact_amount=rating.amount,
                    rounding=ref.price.rounding,
                ),
            )
        )
    cap = _cap(ref, context.caps, billing.subscription_id)
    adjusted = exact_total
    if cap is not None and exact_total > cap:
        adjusted = cap
        lines.append(
            _adjustment(
                context,
                billing,
                ref,
                period=period,
                due_at=due_at,
                kind=LineKind.USAGE_CAP,
                exact=COMPUTATION_CONTEXT.subtract(cap, exact_total),
            )
        )
    minimum = ref.price.minimum_amount
    if closed and minimum is not None and adjusted < minimum:
        lines.append(
            _adjustment(
                context,
                billing,
                ref,
                period=period,
                due_at=due_at,
                kind=LineKind.USAGE_MINIMUM,
                exact=COMPUTATION_CONTEXT.subtract(minimum, adjusted),
            )
        )
    return lines


def _cap(ref: PriceRef, caps: Sequence[PriceCap], subscription_id: str) -> Decimal | None:
    bounds = [cap.maximum_amount for cap in caps if cap.applies(subscription_id, ref.price_id)]
    if ref.price.maximum_amount is not None:
        bounds.append(ref.price.maximum_amount)
    return min(bounds) if bounds else None


def _adjustment(
    context: InvoiceContext,
    billing: SubscriptionBilling,
    ref: PriceRef,
    *,
    period: Period,
    due_at: datetime,
    kind: LineKind,
    exact: Decimal,
) -> ExpectedLine:
    label = "minimum" if kind is LineKind.USAGE_MINIMUM else "maximum"
    return ExpectedLine(
        key=LineKey(billing.subscription_id, ref.price_id, period.start, period.end, (), kind),
        amount_minor=round_to_unit(exact, context.currency, ref.price.rounding),
        due_at=due_at,
        description=f"{ref.name} period {label}",
        product=ref.product,
        explanation=Explanation(
            price=ref.source(),
            billing_period=period,
            exact_amount=exact,
            rounding=ref.price.rounding,
            note=f"the period's usage is brought to the price's {label}",
        ),
    )


def _one_off_line(context: InvoiceContext, charge: OneOffCharge) -> ExpectedLine:
    """A one-off charge's line. A flat fee is charged `quantity` times (as a fixed fee's seats are);
    any other model rates `quantity` as its units (per unit, package, tiers)."""
    ref = charge.price
    if ref.price.meter is not None:
        raise Rejected.because("one_off_price_must_not_be_metered", "a one-off charge is not usage", "price")
    key = LineKey("", ref.price_id, charge.at, charge.at, (), LineKind.ONE_OFF, charge.charge_id)
    description = charge.description or ref.name
    if isinstance(ref.price.model, FlatFee):
        exact = EXACT.multiply(ref.price.model.amount, charge.quantity)
        amount_minor = round_to_unit(exact, context.currency, ref.price.rounding)
        if amount_minor > AMOUNT_MINOR_MAX:
            raise Rejected.because(
                "amount_exceeds_limit",
                f"the amount does not fit in a ledger amount ({context.currency.code})",
                "quantity",
            )
        return ExpectedLine(
            key=key,
            amount_minor=amount_minor,
            due_at=charge.at,
            description=description,
            product=ref.product,
            explanation=Explanation(
                price=ref.source(),
                quantity=charge.quantity,
                unit_amount=ref.price.model.amount,
                exact_amount=exact,
                rounding=ref.price.rounding,
            ),
        )
    rating = rate(ref.price, Quantity(charge.quantity))
    return ExpectedLine(
        key=key,
        amount_minor=rating.amount_minor,
        due_at=charge.at,
        description=description,
        product=ref.product,
        explanation=Explanation(
            price=ref.source(),
            quantity=rating.quantity,
            rating=rating,
            exact_amount=rating.amount,
            rounding=ref.price.rounding,
        ),
    )
