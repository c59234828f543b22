"""What a price is rated against: a closed union of usage shapes, each checked on construction.

- `Quantity`: one number (units, tokens, GB-hours) — enough for every model but matrix.
- `EventValues`: each event's value, in event order — what a percentage price needs when it has
  per-event bounds or free events (a count and a sum cannot say which events hit a bound).
- `EventSummary`: the count and the sum of event values — enough for a percentage price without
  per-event bounds or free events.
- `GroupedQuantities`: a quantity per combination of dimension values — what a matrix price needs.

Models that price a single quantity accept any shape and price its total (the sum of event values,
or of the groups' quantities).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from tally.core.frozen import quick_init
from tally.core.rating.models import (
    DIMENSION_VALUE_LENGTH_MAX,
    QUANTITY_DECIMAL_PLACES_MAX,
    QUANTITY_WHOLE_DIGITS_MAX,
    WIDE,
    ZERO,
    as_decimal,
    refuse_float,
)
from tally.core.rejections import InvariantViolation, Rejected

# Per-event values are held in memory; past this, bill from a summary or split the period.
EVENT_VALUES_MAX = 1_000_000
GROUPS_MAX = 10_000
EVENT_COUNT_MAX = 10**15

Group = tuple[str | None, ...]


def check_usage_number(value: object, field: str) -> Decimal:
    """A measured quantity or event value: finite, not negative, within the metering limits."""
    number = as_decimal(value, field)
    if not number.is_finite():
        raise Rejected.because("quantity_must_be_finite", "a quantity is a finite number", field)
    if number < 0:
        raise Rejected.because("quantity_must_not_be_negative", "a quantity is zero or more", field)
    if number:
        _, digits, exponent = number.normalize(WIDE).as_tuple()
        if not isinstance(exponent, int):
            raise InvariantViolation("a finite Decimal has an integer exponent")
        if len(digits) + exponent > QUANTITY_WHOLE_DIGITS_MAX or -exponent > QUANTITY_DECIMAL_PLACES_MAX:
            raise Rejected.because(
                "quantity_out_of_range",
                f"at most {QUANTITY_WHOLE_DIGITS_MAX} digits before and {QUANTITY_DECIMAL_PLACES_MAX} after the point",
                field,
            )
    return number


@quick_init
@dataclass(frozen=True, slots=True)
class Quantity:
    value: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", check_usage_number(self.value, "quantity"))


@dataclass(frozen=True, slots=True)
class EventValues:
    """Each event's value, in the order the events happened (free events are the first ones)."""

    values: tuple[Decimal, ...]

    def __post_init__(self) -> None:
        values = tuple(self.values)
        if len(values) > EVENT_VALUES_MAX:
            raise Rejected.because(
                "event_values_exceed_limit", f"rate at most {EVENT_VALUES_MAX} event values at once", "events"
            )
        object.__setattr__(
            self,
            "values",
            tuple(check_usage_number(value, f"events[{index}].value") for index, value in enumerate(values)),
        )


@dataclass(frozen=True, slots=True)
class EventSummary:
    count: int
    total: Decimal

    def __post_init__(self) -> None:
        refuse_float(self.count)
        if isinstance(self.count, bool) or not isinstance(self.count, int):
            raise Rejected.because("value_must_be_integer", "count is a whole number", "summary.count")
        if not 0 <= self.count <= EVENT_COUNT_MAX:
            raise Rejected.because("event_count_out_of_range", f"count is 0 to {EVENT_COUNT_MAX}", "summary.count")
        object.__setattr__(self, "total", check_usage_number(self.total, "summary.total"))
        if self.count == 0 and self.total != 0:
            raise Rejected.because("event_summary_inconsistent", "no events cannot add up to a total", "summary.total")


@dataclass(frozen=True, slots=True)
class GroupedQuantities:
    """A quantity per group: the group is the dimension values in the price's dimension order
    (None where an event had no value for a dimension)."""

    quantities: tuple[tuple[Group, Decimal], ...]

    def __post_init__(self) -> None:
        items = tuple(self.quantities)
        if len(items) > GROUPS_MAX:
            raise Rejected.because("groups_exceed_limit", f"rate at most {GROUPS_MAX} groups at once", "groups")
        checked: list[tuple[Group, Decimal]] = []
        seen: set[Group] = set()
        for index, (raw_group, quantity) in enumerate(items):
            field = f"groups[{index}]"
            group = tuple(raw_group)
            for position, value in enumerate(group):
                if value is not None and (not isinstance(value, str) or len(value) > DIMENSION_VALUE_LENGTH_MAX):
                    raise Rejected.because(
                        "group_value_invalid",
                        f"a dimension value is a string of at most {DIMENSION_VALUE_LENGTH_MAX} characters, or null",
                        f"{field}.values[{position}]",
                    )
            if group in seen:
                raise Rejected.because("groups_must_be_distinct", "two groups have the same values", f"{field}.values")
            seen.add(group)
            checked.append((group, check_usage_number(quantity, f"{field}.quantity")))
        object.__setattr__(self, "quantities", tuple(checked))

    @classmethod
    def of(cls, quantities: Mapping[Group, Decimal | int] | Iterable[tuple[Group, Decimal | int]]) -> GroupedQuantities:
        items = quantities.items() if isinstance(quantities, Mapping) else quantities
        return cls(tuple((tuple(group), Decimal(quantity)) for group, quantity in items))


Usage = Quantity | EventValues | EventSummary | GroupedQuantities


def as_usage(usage: Usage | Decimal | int | None) -> Usage:
    """A bare number is a `Quantity`; None (a flat fee needs no usage) is a quantity of zero."""
    if usage is None:
        return Quantity(ZERO)
    if isinstance(usage, Quantity | EventValues | EventSummary | GroupedQuantities):
        return usage
    return Quantity(as_decimal(usage, "quantity"))
