"""Prices: one pricing model from a closed union, plus what every price has (unit, cadence, bounds).

Every type here is a frozen dataclass that checks itself on construction and raises `Rejected` with
a stable code. The checks run in a fixed order (the order of the fields, top to bottom, then the
rules between fields), so one bad price always gets the same code. Numbers are `Decimal` (an `int`
is accepted and converted); a `float` is refused with `TypeError`, as everywhere money enters.
"""

from __future__ import annotations

import decimal
import re
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from tally.core.money import RoundingMode, Unit
from tally.core.periods import Interval
from tally.core.rejections import InvariantViolation, Rejected

# ----- limits (STYLE rule 9) ---------------------------------------------------------------------

TIERS_MAX = 100
MATRIX_DIMENSIONS_MAX = 5  # as many as a meter has group_by keys
MATRIX_RATES_MAX = 1_000
DIMENSION_VALUE_LENGTH_MAX = 255
# A price (an amount in major units) has at most this many digits either side of the point.
PRICE_WHOLE_DIGITS_MAX = 18
PRICE_DECIMAL_PLACES_MAX = 18
# Quantities (tier bounds, package sizes, free units, divisors) share the metering limits.
QUANTITY_WHOLE_DIGITS_MAX = 38
QUANTITY_DECIMAL_PLACES_MAX = 38
RATE_PERCENT_MAX = Decimal(100)
FREE_EVENTS_MAX = 10**12

METER_CODE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # the same rule as meters' codes
DIMENSION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")  # the same rule as property names

ZERO = Decimal(0)
# Wide enough that normalizing any accepted number never rounds it (the default context keeps 28 digits).
WIDE = decimal.Context(prec=1000, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[decimal.InvalidOperation])


class TierBounds(StrEnum):
    """Which tier a quantity exactly on a bound belongs to.

    `inclusive` (default, like Stripe's `up_to`): `up_to: 1000` holds the 1000th unit.
    `exclusive`: the tier ends just before `up_to`; a quantity of exactly 1000 is in the next tier.
    """

    INCLUSIVE = "inclusive"
    EXCLUSIVE = "exclusive"


class PackageRounding(StrEnum):
    """How a partial package counts: `up` (default) bills it whole, `down` does not bill it."""

    UP = "up"
    DOWN = "down"


class TransformRounding(StrEnum):
    """How a divided quantity is rounded to whole units before pricing (`none`: kept as is)."""

    UP = "up"
    DOWN = "down"
    HALF_UP = "half_up"
    NONE = "none"


class BillingTiming(StrEnum):
    """When a period is billed: at its start (fixed fees) or at its end (usage)."""

    IN_ADVANCE = "in_advance"
    IN_ARREARS = "in_arrears"


class ModelKind(StrEnum):
    FLAT_FEE = "flat_fee"
    PER_UNIT = "per_unit"
    PACKAGE = "package"
    GRADUATED = "graduated"
    VOLUME = "volume"
    PERCENTAGE = "percentage"
    MATRIX = "matrix"


# ----- numbers -----------------------------------------------------------------------------------


def refuse_float(value: object) -> None:
    if isinstance(value, float):
        raise TypeError("float is never used for money or quantities; pass a Decimal or an int")


def as_decimal(value: object, field: str) -> Decimal:
    """An int or Decimal as a Decimal; a float is a programming error, anything else a rejection."""
    refuse_float(value)
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise Rejected.because("value_must_be_number", "give a number (as a JSON number or a string)", field)
    return Decimal(value)


def _digits(value: Decimal) -> tuple[int, int]:
    """(whole digits, decimal places) of a finite Decimal."""
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise InvariantViolation("a finite Decimal has an integer exponent")
    places = max(0, -exponent)
    whole = max(0, len(digits) + exponent)
    return whole, places


def check_price(value: object, field: str) -> Decimal:
    """A money amount in major units: finite, not negative, at most 18 digits either side of the point."""
    number = as_decimal(value, field)
    if not number.is_finite():
        raise Rejected.because("price_must_be_finite", "a price is a finite number", field)
    if number < 0:
        raise Rejected.because("price_must_not_be_negative", "a price is zero or more", field)
    whole, places = _digits(number.normalize(WIDE) if number else ZERO)
    if whole > PRICE_WHOLE_DIGITS_MAX or places > PRICE_DECIMAL_PLACES_MAX:
        raise Rejected.because(
            "price_out_of_range",
            f"a price has at most {PRICE_WHOLE_DIGITS_MAX} digits before the point"
            f" and {PRICE_DECIMAL_PLACES_MAX} after it",
            field,
        )
    return number


def check_quantity(value: object, field: str, code_prefix: str, *, positive: bool) -> Decimal:
    """A quantity parameter (tier bound, package size, free units, divisor): finite, in range.

    Codes: `<prefix>_must_be_finite`, `<prefix>_must_be_positive` or `<prefix>_must_not_be_negative`,
    `<prefix>_out_of_range`.
    """
    number = as_decimal(value, field)
    if not number.is_finite():
        raise Rejected.because(f"{code_prefix}_must_be_finite", "give a finite number", field)
    if positive and number <= 0:
        raise Rejected.because(f"{code_prefix}_must_be_positive", "give a number greater than zero", field)
    if number < 0:
        raise Rejected.because(f"{code_prefix}_must_not_be_negative", "give zero or more", field)
    whole, places = _digits(number.normalize(WIDE) if number else ZERO)
    if whole > QUANTITY_WHOLE_DIGITS_MAX or places > QUANTITY_DECIMAL_PLACES_MAX:
        raise Rejected.because(
            f"{code_prefix}_out_of_range",
            f"at most {QUANTITY_WHOLE_DIGITS_MAX} digits before and {QUANTITY_DECIMAL_PLACES_MAX} after the point",
            field,
        )
    return number


def _set(instance: object, name: str, value: object) -> None:
    object.__setattr__(instance, name, value)


def _text(value: Decimal) -> str:
    """A number as documents write it: exact, canonical (`1.50` → `1.5`), never in exponent form."""
    return "0" if value == 0 else format(value.normalize(WIDE), "f")


# ----- the models --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlatFee:
    """A fixed amount per period (or once), whatever the usage."""

    amount: Decimal
    kind: ClassVar[ModelKind] = ModelKind.FLAT_FEE

    def __post_init__(self) -> None:
        _set(self, "amount", check_price(self.amount, "amount"))

    def fields(self) -> dict[str, Any]:
        return {"amount": _text(self.amount)}


@dataclass(frozen=True, slots=True)
class PerUnit:
    """`unit_price` × quantity."""

    unit_price: Decimal
    kind: ClassVar[ModelKind] = ModelKind.PER_UNIT

    def __post_init__(self) -> None:
        _set(self, "unit_price", check_price(self.unit_price, "unit_price"))

    def fields(self) -> dict[str, Any]:
        return {"unit_price": _text(self.unit_price)}


@dataclass(frozen=True, slots=True)
class Package:
    """`package_price` per started (or completed) package of `package_size` units, after `free_units`."""

    package_size: Decimal
    package_price: Decimal
    rounding: PackageRounding = PackageRounding.UP
    free_units: Decimal = ZERO
    kind: ClassVar[ModelKind] = ModelKind.PACKAGE

    def __post_init__(self) -> None:
        _set(self, "package_size", check_quantity(self.package_size, "package_size", "package_size", positive=True))
        _set(self, "package_price", check_price(self.package_price, "package_price"))
        _set(self, "rounding", PackageRounding(self.rounding))
        _set(self, "free_units", check_quantity(self.free_units, "free_units", "free_units", positive=False))

    def fields(self) -> dict[str, Any]:
        return {
            "package_size": _text(self.package_size),
            "package_price": _text(self.package_price),
            "package_rounding": self.rounding.value,
            "free_units": _text(self.free_units),
        }


@dataclass(frozen=True, slots=True)
class Tier:
    """One row of a tier table: up to `up_to` units (None: no upper bound, last tier only)."""

    up_to: Decimal | None
    unit_price: Decimal = ZERO
    flat_fee: Decimal = ZERO

    def fields(self) -> dict[str, Any]:
        return {
            "up_to": None if self.up_to is None else _text(self.up_to),
            "unit_price": _text(self.unit_price),
            "flat_fee": _text(self.flat_fee),
        }


def check_tiers(tiers: object, starts: tuple[Decimal | None, ...] | None = None) -> tuple[Tier, ...]:
    """The tier table's rules, in order: present, within the limit, then tier by tier (bounds, prices),
    then the last tier unbounded. `starts` are the lower bounds a document gave (each optional), only
    to name gaps and overlaps precisely; a tier otherwise starts where the previous one ends."""
    if not isinstance(tiers, tuple | list) or not tiers:
        raise Rejected.because("tiers_required", "a tiered price has at least one tier", "tiers")
    if len(tiers) > TIERS_MAX:
        raise Rejected.because("tiers_exceed_limit", f"a price has at most {TIERS_MAX} tiers", "tiers")
    checked: list[Tier] = []
    previous_end = ZERO
    for index, tier in enumerate(tiers):
        field = f"tiers[{index}]"
        if not isinstance(tier, Tier):
            raise Rejected.because("value_must_be_object", "each tier is an object", field)
        last = index == len(tiers) - 1
        start = starts[index] if starts is not None and index < len(starts) else None
        if start is not None:
            start = check_quantity(start, f"{field}.from", "tier_bound", positive=False)
            if index == 0 and start != 0:
                raise Rejected.because("first_tier_must_start_at_zero", "the first tier starts at 0", f"{field}.from")
            if start > previous_end:
                raise Rejected.because(
                    "tiers_must_not_have_gaps",
                    f"this tier starts at {start} but the previous one ends at {previous_end}",
                    f"{field}.from",
                )
            if start < previous_end:
                raise Rejected.because(
                    "tiers_must_not_overlap",
                    f"this tier starts at {start}, inside the previous one (which ends at {previous_end})",
                    f"{field}.from",
                )
        up_to = tier.up_to
        if up_to is None:
            if not last:
                raise Rejected.because(
                    "unbounded_tier_must_be_last", "only the last tier has no up_to", f"{field}.up_to"
                )
        else:
            up_to = check_quantity(up_to, f"{field}.up_to", "tier_bound", positive=False)
            if up_to <= previous_end:
                raise Rejected.because(
                    "tiers_must_be_increasing",
                    f"up_to must be greater than {previous_end} (where this tier starts)",
                    f"{field}.up_to",
                )
            previous_end = up_to
        unit_price = check_price(tier.unit_price, f"{field}.unit_price")
        flat_fee = check_price(tier.flat_fee, f"{field}.flat_fee")
        checked.append(Tier(up_to=up_to, unit_price=unit_price, flat_fee=flat_fee))
    if checked[-1].up_to is not None:
        raise Rejected.because(
            "last_tier_must_be_unbounded", "the last tier has no up_to (it takes every unit above)", "tiers"
        )
    return tuple(checked)


@dataclass(frozen=True, slots=True)
class Graduated:
    """Each tier prices the units that fall inside it; a tier's flat fee is charged once usage enters it."""

    tiers: tuple[Tier, ...]
    tier_bounds: TierBounds = TierBounds.INCLUSIVE
    flat_fee_at_zero_usage: bool = False
    kind: ClassVar[ModelKind] = ModelKind.GRADUATED

    def __post_init__(self) -> None:
        _set(self, "tiers", check_tiers(self.tiers))
        _set(self, "tier_bounds", TierBounds(self.tier_bounds))
        _check_boolean(self.flat_fee_at_zero_usage, "flat_fee_at_zero_usage")

    def fields(self) -> dict[str, Any]:
        return _tier_fields(self.tiers, self.tier_bounds, self.flat_fee_at_zero_usage)


@dataclass(frozen=True, slots=True)
class Volume:
    """The tier the whole quantity falls in prices every unit (plus that tier's flat fee)."""

    tiers: tuple[Tier, ...]
    tier_bounds: TierBounds = TierBounds.INCLUSIVE
    flat_fee_at_zero_usage: bool = False
    kind: ClassVar[ModelKind] = ModelKind.VOLUME

    def __post_init__(self) -> None:
        _set(self, "tiers", check_tiers(self.tiers))
        _set(self, "tier_bounds", TierBounds(self.tier_bounds))
        _check_boolean(self.flat_fee_at_zero_usage, "flat_fee_at_zero_usage")

    def fields(self) -> dict[str, Any]:
        return _tier_fields(self.tiers, self.tier_bounds, self.flat_fee_at_zero_usage)


def _tier_fields(tiers: tuple[Tier, ...], bounds: TierBounds, at_zero: bool) -> dict[str, Any]:
    return {
        "tiers": [tier.fields() for tier in tiers],
        "tier_bounds": bounds.value,
        "flat_fee_at_zero_usage": at_zero,
    }


def _check_boolean(value: object, field: str) -> None:
    if not isinstance(value, bool):
        raise Rejected.because("value_must_be_boolean", "give true or false", field)


@dataclass(frozen=True, slots=True)
class Percentage:
    """A percentage of each event's value (a payment's amount, say), plus a fixed fee per event.

    Each charged event pays `rate_percent`% of its chargeable value plus `fixed_fee_per_event`, then
    bounded by `per_event_minimum` / `per_event_maximum`. The first `free_events` events are free
    entirely; after them, the first `free_amount` of value (in event order) pays no percentage (its
    events still pay the fixed fee).
    """

    rate_percent: Decimal
    fixed_fee_per_event: Decimal = ZERO
    per_event_minimum: Decimal | None = None
    per_event_maximum: Decimal | None = None
    free_events: int = 0
    free_amount: Decimal = ZERO
    kind: ClassVar[ModelKind] = ModelKind.PERCENTAGE

    def __post_init__(self) -> None:
        rate = as_decimal(self.rate_percent, "rate_percent")
        if not rate.is_finite() or not ZERO <= rate <= RATE_PERCENT_MAX:
            raise Rejected.because("rate_percent_out_of_range", "rate_percent is 0 to 100", "rate_percent")
        if _digits(rate.normalize(WIDE) if rate else ZERO)[1] > PRICE_DECIMAL_PLACES_MAX:
            raise Rejected.because(
                "rate_percent_out_of_range",
                f"rate_percent has at most {PRICE_DECIMAL_PLACES_MAX} decimals",
                "rate_percent",
            )
        _set(self, "rate_percent", rate)
        _set(self, "fixed_fee_per_event", check_price(self.fixed_fee_per_event, "fixed_fee_per_event"))
        if self.per_event_minimum is not None:
            _set(self, "per_event_minimum", check_price(self.per_event_minimum, "per_event_minimum"))
        if self.per_event_maximum is not None:
            _set(self, "per_event_maximum", check_price(self.per_event_maximum, "per_event_maximum"))
        if (
            self.per_event_minimum is not None
            and self.per_event_maximum is not None
            and self.per_event_minimum > self.per_event_maximum
        ):
            raise Rejected.because(
                "per_event_minimum_must_not_exceed_maximum",
                "per_event_minimum is at most per_event_maximum",
                "per_event_minimum",
            )
        refuse_float(self.free_events)
        if isinstance(self.free_events, bool) or not isinstance(self.free_events, int):
            raise Rejected.because("value_must_be_integer", "free_events is a whole number", "free_events")
        if not 0 <= self.free_events <= FREE_EVENTS_MAX:
            raise Rejected.because("free_events_out_of_range", f"free_events is 0 to {FREE_EVENTS_MAX}", "free_events")
        _set(self, "free_amount", check_price(self.free_amount, "free_amount"))

    @property
    def needs_event_values(self) -> bool:
        """Per-event bounds and free events depend on each event's value: a count and a sum won't do."""
        return self.per_event_minimum is not None or self.per_event_maximum is not None or self.free_events > 0

    @property
    def needs_event_count(self) -> bool:
        return self.needs_event_values or self.fixed_fee_per_event > 0

    def fields(self) -> dict[str, Any]:
        return {
            "rate_percent": _text(self.rate_percent),
            "fixed_fee_per_event": _text(self.fixed_fee_per_event),
            "per_event_minimum": None if self.per_event_minimum is None else _text(self.per_event_minimum),
            "per_event_maximum": None if self.per_event_maximum is None else _text(self.per_event_maximum),
            "free_events": self.free_events,
            "free_amount": _text(self.free_amount),
        }


@dataclass(frozen=True, slots=True)
class MatrixRate:
    """The unit price for one combination of dimension values (in the order of the matrix's dimensions)."""

    values: tuple[str, ...]
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class Matrix:
    """A unit price per combination of group_by values (model × region, say), with an optional default.

    Without a default, usage in a combination that has no rate is refused when rated
    (`matrix_rate_must_exist`), never billed at zero by accident.
    """

    dimensions: tuple[str, ...]
    rates: tuple[MatrixRate, ...]
    default_unit_price: Decimal | None = None
    kind: ClassVar[ModelKind] = ModelKind.MATRIX

    def __post_init__(self) -> None:
        dimensions = self.dimensions
        if not isinstance(dimensions, tuple | list) or not dimensions:
            raise Rejected.because("matrix_dimensions_required", "a matrix has at least one dimension", "dimensions")
        if len(dimensions) > MATRIX_DIMENSIONS_MAX:
            raise Rejected.because(
                "matrix_dimensions_exceed_limit",
                f"a matrix has at most {MATRIX_DIMENSIONS_MAX} dimensions",
                "dimensions",
            )
        for index, name in enumerate(dimensions):
            if not isinstance(name, str) or not DIMENSION_NAME.match(name):
                raise Rejected.because(
                    "dimension_name_invalid",
                    "a dimension is a property name: 1 to 64 letters, digits, _, . and -, not starting with a digit",
                    f"dimensions[{index}]",
                )
        if len(set(dimensions)) != len(dimensions):
            raise Rejected.because("matrix_dimensions_must_be_distinct", "a dimension appears twice", "dimensions")
        _set(self, "dimensions", tuple(dimensions))
        rates = self.rates
        if not isinstance(rates, tuple | list):
            raise Rejected.because("value_must_be_list", "rates is a list", "rates")
        if len(rates) > MATRIX_RATES_MAX:
            raise Rejected.because(
                "matrix_rates_exceed_limit", f"a matrix has at most {MATRIX_RATES_MAX} rates", "rates"
            )
        checked: list[MatrixRate] = []
        seen: set[tuple[str, ...]] = set()
        for index, rate in enumerate(rates):
            field = f"rates[{index}]"
            values = tuple(rate.values)
            if len(values) != len(dimensions):
                raise Rejected.because(
                    "matrix_rate_values_must_match_dimensions",
                    f"each rate gives one value per dimension ({', '.join(dimensions)})",
                    f"{field}.values",
                )
            for position, value in enumerate(values):
                if not isinstance(value, str) or not 1 <= len(value) <= DIMENSION_VALUE_LENGTH_MAX:
                    raise Rejected.because(
                        "matrix_rate_value_invalid",
                        f"a dimension value is a string of 1 to {DIMENSION_VALUE_LENGTH_MAX} characters",
                        f"{field}.values[{position}]",
                    )
            if values in seen:
                raise Rejected.because(
                    "matrix_rates_must_be_distinct", "two rates name the same combination", f"{field}.values"
                )
            seen.add(values)
            checked.append(MatrixRate(values=values, unit_price=check_price(rate.unit_price, f"{field}.unit_price")))
        _set(self, "rates", tuple(checked))
        if self.default_unit_price is not None:
            _set(self, "default_unit_price", check_price(self.default_unit_price, "default_unit_price"))

    def unit_price_for(self, values: tuple[str | None, ...]) -> Decimal | None:
        for rate in self.rates:
            if rate.values == values:
                return rate.unit_price
        return self.default_unit_price

    def fields(self) -> dict[str, Any]:
        return {
            "dimensions": list(self.dimensions),
            "rates": [{"values": list(rate.values), "unit_price": _text(rate.unit_price)} for rate in self.rates],
            "default_unit_price": None if self.default_unit_price is None else _text(self.default_unit_price),
        }


PricingModel = FlatFee | PerUnit | Package | Graduated | Volume | Percentage | Matrix
# Models that price a quantity: a quantity transform applies to them.
_TRANSFORMABLE = (PerUnit, Package, Graduated, Volume, Matrix)


# ----- what every price has ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuantityTransform:
    """Divide the quantity before pricing (tokens → millions of tokens), then round it as said."""

    divide_by: Decimal
    rounding: TransformRounding = TransformRounding.NONE

    def __post_init__(self) -> None:
        _set(
            self,
            "divide_by",
            check_quantity(self.divide_by, "quantity_transform.divide_by", "divide_by", positive=True),
        )
        try:
            _set(self, "rounding", TransformRounding(self.rounding))
        except ValueError:
            raise Rejected.because(
                "transform_rounding_unknown",
                f"rounding is one of {', '.join(TransformRounding)}",
                "quantity_transform.rounding",
            ) from None

    def fields(self) -> dict[str, Any]:
        return {"divide_by": _text(self.divide_by), "rounding": self.rounding.value}


DEFAULT_INTERVAL = Interval.parse("month")


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    """A pricing model in a unit, with its cadence, optional meter and per-period bounds.

    - `interval`: how often the price is billed (default one month); None is a one-off fee, billed
      in advance and never metered.
    - `billing_timing`: default in advance for a flat fee, in arrears for every other model. A
      metered price is always billed in arrears.
    - `minimum_amount` / `maximum_amount`: the amount per period is raised / capped to these.
    - `rounding`: the mode of the one rounding of the line amount to the unit's minor units.
    """

    unit: Unit
    model: PricingModel
    meter: str | None = None
    billing_timing: BillingTiming | None = None
    interval: Interval | None = DEFAULT_INTERVAL
    minimum_amount: Decimal | None = None
    maximum_amount: Decimal | None = None
    quantity_transform: QuantityTransform | None = None
    rounding: RoundingMode = RoundingMode.HALF_UP

    def __post_init__(self) -> None:
        if self.meter is not None and (not isinstance(self.meter, str) or not METER_CODE.match(self.meter)):
            raise Rejected.because(
                "meter_code_invalid",
                "a meter code is 1 to 63 characters of a-z, 0-9 and _, starting with a letter",
                "meter",
            )
        if isinstance(self.model, FlatFee) and self.meter is not None:
            raise Rejected.because("flat_fee_must_not_have_a_meter", "a flat fee does not depend on usage", "meter")
        timing = self.billing_timing
        if timing is None:
            timing = BillingTiming.IN_ADVANCE if isinstance(self.model, FlatFee) else BillingTiming.IN_ARREARS
        _set(self, "billing_timing", BillingTiming(timing))
        if self.meter is not None and self.billing_timing is BillingTiming.IN_ADVANCE:
            raise Rejected.because(
                "metered_price_must_be_billed_in_arrears",
                "usage is known only once it happened: a metered price is billed in arrears",
                "billing_timing",
            )
        if self.interval is None and (self.billing_timing is not BillingTiming.IN_ADVANCE or self.meter is not None):
            raise Rejected.because(
                "one_off_price_must_be_billed_in_advance",
                "a price without an interval is a one-off fee, billed in advance and never metered",
                "interval",
            )
        if self.minimum_amount is not None:
            _set(self, "minimum_amount", check_price(self.minimum_amount, "minimum_amount"))
        if self.maximum_amount is not None:
            _set(self, "maximum_amount", check_price(self.maximum_amount, "maximum_amount"))
        if (
            self.minimum_amount is not None
            and self.maximum_amount is not None
            and self.minimum_amount > self.maximum_amount
        ):
            raise Rejected.because(
                "minimum_must_not_exceed_maximum", "minimum_amount is at most maximum_amount", "minimum_amount"
            )
        if self.quantity_transform is not None and not isinstance(self.model, _TRANSFORMABLE):
            raise Rejected.because(
                "quantity_transform_not_allowed",
                f"a {self.model.kind} price has no quantity to transform",
                "quantity_transform",
            )
        _set(self, "rounding", RoundingMode(self.rounding))

    @property
    def kind(self) -> ModelKind:
        return self.model.kind

    def document(self) -> dict[str, Any]:
        """The price as JSON-safe data (numbers as strings, every default spelled out): what the API
        answers, the catalog writes and the database stores. `price_from_document` reads it back."""
        return {
            "model": self.model.kind.value,
            "currency": self.unit.code,
            **self.model.fields(),
            "meter": self.meter,
            "billing_timing": self.billing_timing.value if self.billing_timing else None,
            "interval": None
            if self.interval is None
            else {"unit": self.interval.unit.value, "count": self.interval.count},
            "minimum_amount": None if self.minimum_amount is None else _text(self.minimum_amount),
            "maximum_amount": None if self.maximum_amount is None else _text(self.maximum_amount),
            "quantity_transform": None if self.quantity_transform is None else self.quantity_transform.fields(),
            "rounding": self.rounding.value,
        }
