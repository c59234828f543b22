"""`rate(price, usage)`: the amount a price charges for some usage, exactly, with its explanation.

All arithmetic is exact (`EXACT` traps any inexact result), so `Rating.amount` is the true amount;
`Rating.amount_minor` is that amount rounded once, by `money.round_to_unit`, in the price's mode.
The breakdown lines add up exactly to `amount` (checked: a mismatch is a bug, not a rejection).
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from tally.core.frozen import quick_init
from tally.core.money import AMOUNT_MINOR_MAX, COMPUTATION_CONTEXT, Unit, round_to_unit
from tally.core.rating.models import (
    ZERO,
    FlatFee,
    Graduated,
    Matrix,
    ModelKind,
    Package,
    PackageRounding,
    Percentage,
    PerUnit,
    Price,
    QuantityTransform,
    Tier,
    TierBounds,
    TransformRounding,
    Volume,
)
from tally.core.rating.usage import EventSummary, EventValues, Group, GroupedQuantities, Quantity, Usage, as_usage
from tally.core.rejections import InvariantViolation, Rejected, require

# Every input has at most 38 + 38 digits, so products and sums of a million of them fit with room to
# spare; Inexact is trapped, so an amount is either exact or the rating crashes — never silently off.
EXACT = decimal.Context(
    prec=1000,
    rounding=decimal.ROUND_HALF_EVEN,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.Inexact, decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
_HUNDRED = Decimal(100)
_ONE = Decimal(1)


class LineKind(StrEnum):
    FLAT_FEE = "flat_fee"  # a flat fee price
    UNITS = "units"  # quantity × unit_price: per unit, one tier, one matrix group
    TIER_FLAT_FEE = "tier_flat_fee"  # the flat fee of a tier usage entered
    FREE_UNITS = "free_units"  # package: units given before packages count (amount 0)
    PACKAGES = "packages"  # package: packages × package_price
    FREE_EVENTS = "free_events"  # percentage: the first events, free (amount 0)
    FREE_AMOUNT = "free_amount"  # percentage: value on which no percentage is charged (amount 0)
    PERCENTAGE = "percentage"  # percentage: chargeable value × rate
    EVENT_FEES = "event_fees"  # percentage: charged events × fixed fee per event
    PER_EVENT_MINIMUM = "per_event_minimum"  # percentage: raising events to the per-event minimum (≥ 0)
    PER_EVENT_MAXIMUM = "per_event_maximum"  # percentage: capping events at the per-event maximum (≤ 0)
    MINIMUM = "minimum"  # raising the period's amount to the price's minimum (≥ 0)
    MAXIMUM = "maximum"  # capping the period's amount at the price's maximum (≤ 0)


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class BreakdownLine:
    """One step of a rating, as an invoice line can show it. `amount` is exact and signed (caps are
    negative); the lines of a rating add up to its amount."""

    kind: LineKind
    quantity: Decimal
    unit_price: Decimal | None
    amount: Decimal
    tier: int | None = None  # 1-based
    tier_start: Decimal | None = None
    tier_end: Decimal | None = None  # None: unbounded
    group: Group | None = None

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "kind": self.kind.value,
            "quantity": _text(self.quantity),
            "unit_price": None if self.unit_price is None else _text(self.unit_price),
            "amount": _text(self.amount),
        }
        if self.tier is not None:
            document["tier"] = self.tier
            document["tier_start"] = None if self.tier_start is None else _text(self.tier_start)
            document["tier_end"] = None if self.tier_end is None else _text(self.tier_end)
        if self.group is not None:
            document["group"] = list(self.group)
        return document


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Rating:
    unit: Unit
    model: ModelKind
    quantity: Decimal | None  # the usage measured (units, or the sum of event values); None for a flat fee
    quantity_priced: Decimal | None  # after the quantity transform
    event_count: int | None  # percentage prices rated from events or a summary
    amount: Decimal  # exact, in major units, before rounding
    amount_minor: int  # rounded once, in the price's rounding mode
    breakdown: tuple[BreakdownLine, ...]

    def document(self) -> dict[str, Any]:
        return {
            "model": self.model.value,
            "currency": self.unit.code,
            "quantity": None if self.quantity is None else _text(self.quantity),
            "quantity_priced": None if self.quantity_priced is None else _text(self.quantity_priced),
            "event_count": self.event_count,
            "amount": _text(self.amount),
            "amount_minor": self.amount_minor,
            "breakdown": [line.document() for line in self.breakdown],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RatingIncrement:
    """What is owed for usage beyond what was billed: `total` minus `prior`.

    `amount_minor` is `total.amount_minor − prior.amount_minor` (not the rounding of the exact
    difference), so increments billed one after another add up exactly to the rounded total.
    """

    prior: Rating
    total: Rating
    amount: Decimal  # exact difference; negative when usage was corrected down
    amount_minor: int


def rate(price: Price, usage: Usage | Decimal | int | None = None, *, apply_minimum: bool = True) -> Rating:
    """The amount `price` charges for `usage` over one period, with its breakdown.

    `apply_minimum=False` leaves out the price's per-period minimum (for a mid-period progressive
    invoice: the minimum is owed only once the period closes).
    """
    measured = as_usage(usage)
    transform = price.quantity_transform
    quantity: Decimal | None
    priced: Decimal | None
    event_count: int | None = None
    match price.model:
        case FlatFee(amount=amount):
            quantity = priced = None
            lines = [BreakdownLine(kind=LineKind.FLAT_FEE, quantity=_ONE, unit_price=amount, amount=amount)]
        case PerUnit(unit_price=unit_price):
            quantity = _total_quantity(measured)
            priced = _transformed(quantity, transform)
            lines = [_units(priced, unit_price)]
        case Package() as package:
            quantity = _total_quantity(measured)
            priced = _transformed(quantity, transform)
            lines = _package(package, priced)
        case Graduated() as graduated:
            quantity = _total_quantity(measured)
            priced = _transformed(quantity, transform)
            lines = _graduated(graduated, priced)
        case Volume() as volume:
            quantity = _total_quantity(measured)
            priced = _transformed(quantity, transform)
            lines = _volume(volume, priced)
        case Percentage() as percentage:
            quantity, event_count, lines = _percentage(percentage, measured)
            priced = quantity
        case Matrix() as matrix:
            quantity, priced, lines = _matrix(matrix, measured, transform)
    amount = _sum(line.amount for line in lines)
    if apply_minimum and price.minimum_amount is not None and amount < price.minimum_amount:
        top_up = EXACT.subtract(price.minimum_amount, amount)
        lines.append(BreakdownLine(kind=LineKind.MINIMUM, quantity=_ONE, unit_price=None, amount=top_up))
        amount = price.minimum_amount
    if price.maximum_amount is not None and amount > price.maximum_amount:
        cut = EXACT.subtract(price.maximum_amount, amount)
        lines.append(BreakdownLine(kind=LineKind.MAXIMUM, quantity=_ONE, unit_price=None, amount=cut))
        amount = price.maximum_amount
    require(_sum(line.amount for line in lines) == amount, "breakdown lines must add up to the amount")
    require(amount >= 0, "a rating is never negative")
    amount_minor = round_to_unit(amount, price.unit, price.rounding)
    if amount_minor > AMOUNT_MINOR_MAX:
        raise Rejected.because(
            "amount_exceeds_limit", f"the amount does not fit in a ledger amount ({price.unit.code})", "quantity"
        )
    return Rating(
        unit=price.unit,
        model=price.kind,
        quantity=quantity,
        quantity_priced=priced,
        event_count=event_count,
        amount=amount,
        amount_minor=amount_minor,
        breakdown=tuple(lines),
    )


def rate_increment(
    price: Price,
    quantity_billed_prior: Usage | Decimal | int | None,
    quantity_total: Usage | Decimal | int | None,
    *,
    apply_minimum: bool = True,
) -> RatingIncrement:
    """rate(total) − rate(prior), without drift: both are rated in full and only then subtracted,
    and the minor amount is the difference of the two rounded amounts."""
    prior = rate(price, quantity_billed_prior, apply_minimum=apply_minimum)
    total = rate(price, quantity_total, apply_minimum=apply_minimum)
    return RatingIncrement(
        prior=prior,
        total=total,
        amount=EXACT.subtract(total.amount, prior.amount),
        amount_minor=total.amount_minor - prior.amount_minor,
    )


# ----- the models --------------------------------------------------------------------------------


def _units(quantity: Decimal, unit_price: Decimal, **where: Any) -> BreakdownLine:
    return BreakdownLine(
        kind=LineKind.UNITS,
        quantity=quantity,
        unit_price=unit_price,
        amount=EXACT.multiply(quantity, unit_price),
        **where,
    )


def _package(package: Package, quantity: Decimal) -> list[BreakdownLine]:
    lines: list[BreakdownLine] = []
    if package.free_units > 0:
        free = min(quantity, package.free_units)
        lines.append(BreakdownLine(kind=LineKind.FREE_UNITS, quantity=free, unit_price=ZERO, amount=ZERO))
    chargeable = max(ZERO, EXACT.subtract(quantity, package.free_units))
    whole = EXACT.divide_int(chargeable, package.package_size)
    partial = EXACT.remainder(chargeable, package.package_size) != 0
    packages = EXACT.add(whole, _ONE) if partial and package.rounding is PackageRounding.UP else whole
    lines.append(
        BreakdownLine(
            kind=LineKind.PACKAGES,
            quantity=packages,
            unit_price=package.package_price,
            amount=EXACT.multiply(packages, package.package_price),
        )
    )
    return lines


def _tier_ranges(tiers: Sequence[Tier]) -> list[tuple[Decimal, Decimal | None]]:
    starts = [ZERO, *(tier.up_to for tier in tiers[:-1])]
    return [(start if start is not None else ZERO, tier.up_to) for start, tier in zip(starts, tiers, strict=True)]


def _flat_fee_charged(index: int, start: Decimal, quantity: Decimal, bounds: TierBounds, at_zero: bool) -> bool:
    """Whether usage entered the tier starting at `start`: past its start, or — with exclusive bounds —
    exactly on it. The first tier is entered by any usage above zero, and at zero only by choice."""
    if index == 0:
        return quantity > 0 or at_zero
    return quantity >= start if bounds is TierBounds.EXCLUSIVE else quantity > start


def _graduated(graduated: Graduated, quantity: Decimal) -> list[BreakdownLine]:
    lines: list[BreakdownLine] = []
    for index, ((start, end), tier) in enumerate(zip(_tier_ranges(graduated.tiers), graduated.tiers, strict=True)):
        entered = _flat_fee_charged(index, start, quantity, graduated.tier_bounds, graduated.flat_fee_at_zero_usage)
        if index > 0 and not entered:
            break
        where: dict[str, Any] = {"tier": index + 1, "tier_start": start, "tier_end": end}
        top = quantity if end is None else min(quantity, end)
        lines.append(_units(max(ZERO, EXACT.subtract(top, start)), tier.unit_price, **where))
        if entered and tier.flat_fee:
            lines.append(
                BreakdownLine(
                    kind=LineKind.TIER_FLAT_FEE, quantity=_ONE, unit_price=tier.flat_fee, amount=tier.flat_fee, **where
                )
            )
    return lines


def _volume(volume: Volume, quantity: Decimal) -> list[BreakdownLine]:
    ranges = _tier_ranges(volume.tiers)
    for index, ((start, end), tier) in enumerate(zip(ranges, volume.tiers, strict=True)):
        inside = end is None or (quantity <= end if volume.tier_bounds is TierBounds.INCLUSIVE else quantity < end)
        if not inside:
            continue
        where: dict[str, Any] = {"tier": index + 1, "tier_start": start, "tier_end": end}
        lines = [_units(quantity, tier.unit_price, **where)]
        if tier.flat_fee and (quantity > 0 or volume.flat_fee_at_zero_usage):
            lines.append(
                BreakdownLine(
                    kind=LineKind.TIER_FLAT_FEE, quantity=_ONE, unit_price=tier.flat_fee, amount=tier.flat_fee, **where
                )
            )
        return lines
    raise InvariantViolation("the last tier is unbounded, so some tier holds every quantity")  # pragma: no cover


def _percentage(percentage: Percentage, usage: Usage) -> tuple[Decimal, int | None, list[BreakdownLine]]:
    rate = EXACT.divide(percentage.rate_percent, _HUNDRED)
    match usage:
        case EventValues(values=values):
            return _percentage_per_event(percentage, rate, values)
        case EventSummary(count=count, total=total):
            if percentage.needs_event_values:
                raise _needs_event_values()
            return total, count, _percentage_summary(percentage, rate, total, count)
        case Quantity(value=total):
            if percentage.needs_event_count:
                raise _needs_event_values() if percentage.needs_event_values else _needs_event_count()
            return total, None, _percentage_summary(percentage, rate, total, 0)
        case GroupedQuantities():
            raise Rejected.because(
                "usage_must_be_events",
                "a percentage price is rated from event values (or their count and sum), not from groups",
                "usage",
            )


def _needs_event_values() -> Rejected:
    return Rejected.because(
        "usage_must_have_event_values",
        "this percentage price has per-event bounds or free events: give each event's value",
        "usage",
    )


def _needs_event_count() -> Rejected:
    return Rejected.because(
        "usage_must_have_event_count",
        "this percentage price has a fee per event: give the events, or their count and sum",
        "usage",
    )


def _percentage_summary(percentage: Percentage, rate: Decimal, total: Decimal, count: int) -> list[BreakdownLine]:
    """Without per-event bounds or free events, fees add up the same whatever the events' values."""
    waived = min(total, percentage.free_amount)
    chargeable = EXACT.subtract(total, waived)
    lines: list[BreakdownLine] = []
    if waived > 0:
        lines.append(BreakdownLine(kind=LineKind.FREE_AMOUNT, quantity=waived, unit_price=ZERO, amount=ZERO))
    lines.append(
        BreakdownLine(
            kind=LineKind.PERCENTAGE, quantity=chargeable, unit_price=rate, amount=EXACT.multiply(chargeable, rate)
        )
    )
    if percentage.fixed_fee_per_event > 0:
        fees = EXACT.multiply(Decimal(count), percentage.fixed_fee_per_event)
        lines.append(
            BreakdownLine(
                kind=LineKind.EVENT_FEES,
                quantity=Decimal(count),
                unit_price=percentage.fixed_fee_per_event,
                amount=fees,
            )
        )
    return lines


def _percentage_per_event(
    percentage: Percentage, rate: Decimal, values: Sequence[Decimal]
) -> tuple[Decimal, int, list[BreakdownLine]]:
    free_events = min(percentage.free_events, len(values))
    free_value = _sum(values[:free_events])
    allowance = percentage.free_amount
    waived = chargeable_total = raised_by = capped_by = ZERO
    raised = capped = 0
    minimum, maximum, fixed = percentage.per_event_minimum, percentage.per_event_maximum, percentage.fixed_fee_per_event
    for value in values[free_events:]:
        free_part = min(value, allowance)
        allowance = EXACT.subtract(allowance, free_part)
        waived = EXACT.add(waived, free_part)
        chargeable = EXACT.subtract(value, free_part)
        chargeable_total = EXACT.add(chargeable_total, chargeable)
        fee = EXACT.add(EXACT.multiply(chargeable, rate), fixed)
        if minimum is not None and fee < minimum:
            raised += 1
            raised_by = EXACT.add(raised_by, EXACT.subtract(minimum, fee))
        elif maximum is not None and fee > maximum:
            capped += 1
            capped_by = EXACT.add(capped_by, EXACT.subtract(fee, maximum))
    charged = len(values) - free_events
    lines: list[BreakdownLine] = []
    if free_events:
        lines.append(
            BreakdownLine(kind=LineKind.FREE_EVENTS, quantity=Decimal(free_events), unit_price=ZERO, amount=ZERO)
        )
    if waived > 0:
        lines.append(BreakdownLine(kind=LineKind.FREE_AMOUNT, quantity=waived, unit_price=ZERO, amount=ZERO))
    lines.append(
        BreakdownLine(
            kind=LineKind.PERCENTAGE,
            quantity=chargeable_total,
            unit_price=rate,
            amount=EXACT.multiply(chargeable_total, rate),
        )
    )
    if fixed > 0:
        lines.append(
            BreakdownLine(
                kind=LineKind.EVENT_FEES,
                quantity=Decimal(charged),
                unit_price=fixed,
                amount=EXACT.multiply(Decimal(charged), fixed),
            )
        )
    if raised:
        lines.append(
            BreakdownLine(
                kind=LineKind.PER_EVENT_MINIMUM, quantity=Decimal(raised), unit_price=minimum, amount=raised_by
            )
        )
    if capped:
        lines.append(
            BreakdownLine(
                kind=LineKind.PER_EVENT_MAXIMUM, quantity=Decimal(capped), unit_price=maximum, amount=-capped_by
            )
        )
    total = EXACT.add(free_value, EXACT.add(waived, chargeable_total))
    return total, len(values), lines


def _group_key(group: Group) -> tuple[tuple[bool, str], ...]:
    return tuple((value is not None, value or "") for value in group)


def _matrix(
    matrix: Matrix, usage: Usage, transform: QuantityTransform | None
) -> tuple[Decimal, Decimal, list[BreakdownLine]]:
    if not isinstance(usage, GroupedQuantities):
        raise Rejected.because(
            "usage_must_be_grouped",
            f"a matrix price is rated from quantities per {' × '.join(matrix.dimensions)}",
            "usage",
        )
    lines: list[BreakdownLine] = []
    measured = priced_total = ZERO
    for group, quantity in sorted(usage.quantities, key=lambda item: _group_key(item[0])):
        if len(group) != len(matrix.dimensions):
            raise Rejected.because(
                "group_values_must_match_dimensions",
                f"each group gives one value per dimension ({', '.join(matrix.dimensions)})",
                "usage",
            )
        unit_price = matrix.unit_price_for(group)
        if unit_price is None:
            shown = ", ".join(f"{name}={value}" for name, value in zip(matrix.dimensions, group, strict=True))
            raise Rejected.because(
                "matrix_rate_must_exist", f"no rate for {shown}, and the price has no default_unit_price", "usage"
            )
        priced = _transformed(quantity, transform)
        measured = EXACT.add(measured, quantity)
        priced_total = EXACT.add(priced_total, priced)
        lines.append(_units(priced, unit_price, group=group))
    return measured, priced_total, lines


# ----- quantities --------------------------------------------------------------------------------


def _total_quantity(usage: Usage) -> Decimal:
    match usage:
        case Quantity(value=value):
            return value
        case EventValues(values=values):
            return _sum(values)
        case EventSummary(total=total):
            return total
        case GroupedQuantities(quantities=quantities):
            return _sum(quantity for _, quantity in quantities)


def _transformed(quantity: Decimal, transform: QuantityTransform | None) -> Decimal:
    """The quantity divided (exactly) and rounded to whole units as the transform says.

    `none` keeps the quotient; when it does not terminate (1/3) it keeps 60 significant digits —
    the only place a quantity is not exact, far below any minor unit."""
    if transform is None:
        return quantity
    divisor = transform.divide_by
    whole = EXACT.divide_int(quantity, divisor)
    remainder = EXACT.remainder(quantity, divisor)
    match transform.rounding:
        case TransformRounding.DOWN:
            return whole
        case TransformRounding.UP:
            return EXACT.add(whole, _ONE) if remainder else whole
        case TransformRounding.HALF_UP:
            return EXACT.add(whole, _ONE) if EXACT.multiply(remainder, Decimal(2)) >= divisor else whole
        case TransformRounding.NONE:
            try:
                return EXACT.divide(quantity, divisor)
            except decimal.Inexact:
                return COMPUTATION_CONTEXT.divide(quantity, divisor)


def _sum(values: Iterable[Decimal]) -> Decimal:
    total = ZERO
    for value in values:
        total = EXACT.add(total, value)
    return total


def _text(value: Decimal) -> str:
    return "0" if value == 0 else format(value.normalize(EXACT), "f")
