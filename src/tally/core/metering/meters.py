"""Meters: how events become a quantity. Definitions are frozen values, validated once, versioned.

A meter has a stable `code` and a history of immutable versions. A version's `MeterDefinition`
says which events count (`event_type` and property filters), what is measured (`aggregation`, a
closed union), and by which dimensions results can be split (`group_by`). Changing any of those
makes a new version; `name` and `description` are labels, edited in place.

Everything here is pure: input in, a definition or a `Rejected` with a stable code out. The codes
are checked in a fixed precedence (code, name, description, event type, aggregation, value property,
time unit, filters in order, group_by), so one bad input always gets the same code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from tally.core.rejections import InvariantViolation, Rejected, require

METER_CODE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Properties are top-level keys of an event's `properties` object.
PROPERTY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
NAME_LENGTH_MAX = 200
DESCRIPTION_LENGTH_MAX = 1000
EVENT_TYPE_LENGTH_MAX = 255
FILTERS_MAX = 20
FILTER_VALUES_MAX = 100
FILTER_TEXT_LENGTH_MAX = 255
GROUP_BY_MAX = 5

# A string reads as a number when it matches this (a sign, digits with an optional point, an
# optional exponent of at most two digits) and is at most NUMERIC_TEXT_LENGTH_MAX characters. The
# same pattern guards the cast in SQL, so `'12abc'::numeric` never fails a statement.
NUMERIC_TEXT_PATTERN = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,2})?$"
NUMERIC_TEXT = re.compile(NUMERIC_TEXT_PATTERN)
NUMERIC_TEXT_LENGTH_MAX = 80


class AggregationKind(StrEnum):
    COUNT = "count"
    SUM = "sum"
    MAX = "max"
    MIN = "min"
    UNIQUE_COUNT = "unique_count"
    LATEST = "latest"
    TIME_WEIGHTED_SUM = "time_weighted_sum"


class TimeUnit(StrEnum):
    """The time unit of a time-weighted sum: GB × hours is `hour`."""

    SECOND = "second"
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"

    @property
    def microseconds(self) -> int:
        return _TIME_UNIT_MICROSECONDS[self]


_TIME_UNIT_MICROSECONDS = {
    TimeUnit.SECOND: 1_000_000,
    TimeUnit.MINUTE: 60_000_000,
    TimeUnit.HOUR: 3_600_000_000,
    TimeUnit.DAY: 86_400_000_000,
}


# ----- aggregations: a closed union ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Count:
    """The number of matching events."""

    kind: ClassVar[AggregationKind] = AggregationKind.COUNT


@dataclass(frozen=True, slots=True)
class Sum:
    """The sum of a numeric property."""

    property: str
    kind: ClassVar[AggregationKind] = AggregationKind.SUM


@dataclass(frozen=True, slots=True)
class Max:
    property: str
    kind: ClassVar[AggregationKind] = AggregationKind.MAX


@dataclass(frozen=True, slots=True)
class Min:
    property: str
    kind: ClassVar[AggregationKind] = AggregationKind.MIN


@dataclass(frozen=True, slots=True)
class UniqueCount:
    """The number of distinct values (strings or numbers) of a property."""

    property: str
    kind: ClassVar[AggregationKind] = AggregationKind.UNIQUE_COUNT


@dataclass(frozen=True, slots=True)
class Latest:
    """The numeric value of the last event in the window (by timestamp, then event id)."""

    property: str
    kind: ClassVar[AggregationKind] = AggregationKind.LATEST


@dataclass(frozen=True, slots=True)
class TimeWeightedSum:
    """The integral over time of a gauge: each event sets its series' level until the next one."""

    property: str
    time_unit: TimeUnit = TimeUnit.HOUR
    kind: ClassVar[AggregationKind] = AggregationKind.TIME_WEIGHTED_SUM


Aggregation = Count | Sum | Max | Min | UniqueCount | Latest | TimeWeightedSum
# Aggregations whose value must be numeric (an event without one is skipped and counted as such).
NUMERIC_AGGREGATIONS = frozenset(
    {
        AggregationKind.SUM,
        AggregationKind.MAX,
        AggregationKind.MIN,
        AggregationKind.LATEST,
        AggregationKind.TIME_WEIGHTED_SUM,
    }
)


def value_property(aggregation: Aggregation) -> str | None:
    match aggregation:
        case Count():
            return None
        case Sum(property) | Max(property) | Min(property) | UniqueCount(property) | Latest(property):
            return property
        case TimeWeightedSum(property, _):
            return property


# ----- filters -----------------------------------------------------------------------------------


class FilterOperator(StrEnum):
    EQUALS = "equals"
    IN = "in"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"


COMPARISONS = frozenset({FilterOperator.GT, FilterOperator.GTE, FilterOperator.LT, FilterOperator.LTE})

# A filter operand: a JSON string, number or boolean.
Scalar = str | Decimal | bool


@dataclass(frozen=True, slots=True)
class PropertyFilter:
    """`property` `operator` `values`: equals and comparisons have one value, `in` one or more.

    Equality is JSON equality (a number equals a number of the same value, `"1"` is not `1`).
    A comparison holds only for a numeric property value (see `NUMERIC_TEXT_PATTERN`); a missing or
    non-numeric property fails it.
    """

    property: str
    operator: FilterOperator
    values: tuple[Scalar, ...]


# ----- the definition ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeterDefinition:
    """What a meter version measures. Build it with `MeterDefinitionInput.validate()`."""

    event_type: str
    aggregation: Aggregation
    filters: tuple[PropertyFilter, ...] = ()
    group_by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        require(len(self.filters) <= FILTERS_MAX, "too many filters")
        require(len(self.group_by) <= GROUP_BY_MAX, "too many group_by keys")
        require(len(set(self.group_by)) == len(self.group_by), "group_by keys must be distinct")

    @property
    def value_property(self) -> str | None:
        return value_property(self.aggregation)

    @property
    def kind(self) -> AggregationKind:
        return self.aggregation.kind

    def document(self) -> dict[str, Any]:
        """The definition as JSON-safe data (numbers as strings): stored, compared, and parsed back."""
        return {
            "event_type": self.event_type,
            "aggregation": self.kind.value,
            "value_property": self.value_property,
            "time_unit": self.aggregation.time_unit.value if isinstance(self.aggregation, TimeWeightedSum) else None,
            "filters": [
                {
                    "property": item.property,
                    "operator": item.operator.value,
                    "values": [_scalar_document(value) for value in item.values],
                }
                for item in self.filters
            ],
            "group_by": list(self.group_by),
        }


def _scalar_document(value: Scalar) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolean": value}
    if isinstance(value, Decimal):
        return {"number": str(value)}
    return {"string": value}


def _scalar_from_document(document: Mapping[str, Any]) -> Scalar:
    if "boolean" in document:
        return bool(document["boolean"])
    if "number" in document:
        return Decimal(str(document["number"]))
    return str(document["string"])


def definition_from_document(document: Mapping[str, Any]) -> MeterDefinition:
    """A stored definition back (it was validated when stored; a malformed one is a bug)."""
    filters = [
        {
            "property": item["property"],
            "operator": item["operator"],
            "value": [_scalar_from_document(value) for value in item["values"]]
            if item["operator"] == FilterOperator.IN
            else _scalar_from_document(item["values"][0]),
        }
        for item in document["filters"]
    ]
    try:
        return MeterDefinitionInput(
            event_type=document["event_type"],
            aggregation=document["aggregation"],
            value_property=document.get("value_property"),
            time_unit=document.get("time_unit"),
            filters=tuple(filters),
            group_by=tuple(document["group_by"]),
        ).validate()
    except Rejected as rejected:  # pragma: no cover - stored definitions were validated
        raise ValueError(f"stored meter definition is invalid: {rejected}") from rejected


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterDefinitionInput:
    """A definition as a client sends it (strings, numbers as `Decimal`). `validate()` checks it."""

    event_type: str
    aggregation: str
    value_property: str | None = None
    time_unit: str | None = None
    # Each filter: {"property": str, "operator": str, "value": scalar or list of scalars}.
    filters: Sequence[Mapping[str, object]] = ()
    group_by: Sequence[str] = ()

    @classmethod
    def of(cls, definition: MeterDefinition) -> MeterDefinitionInput:
        """The input that makes `definition` (to apply a partial change to an existing one)."""
        aggregation = definition.aggregation
        return cls(
            event_type=definition.event_type,
            aggregation=definition.kind.value,
            value_property=definition.value_property,
            time_unit=aggregation.time_unit.value if isinstance(aggregation, TimeWeightedSum) else None,
            filters=tuple(
                {
                    "property": item.property,
                    "operator": item.operator.value,
                    "value": list(item.values) if item.operator is FilterOperator.IN else item.values[0],
                }
                for item in definition.filters
            ),
            group_by=definition.group_by,
        )

    def validate(self) -> MeterDefinition:
        event_type = _event_type(self.event_type)
        aggregation = _aggregation(self.aggregation, self.value_property, self.time_unit)
        if len(self.filters) > FILTERS_MAX:
            raise Rejected.because("filters_exceed_limit", f"a meter has at most {FILTERS_MAX} filters", "filters")
        filters = tuple(_filter(item, index) for index, item in enumerate(self.filters))
        return MeterDefinition(
            event_type=event_type, aggregation=aggregation, filters=filters, group_by=_group_by(self.group_by)
        )


def _event_type(event_type: object) -> str:
    if not isinstance(event_type, str) or not 1 <= len(event_type) <= EVENT_TYPE_LENGTH_MAX:
        raise Rejected.because(
            "event_type_invalid", f"event_type is 1 to {EVENT_TYPE_LENGTH_MAX} characters", "event_type"
        )
    return event_type


def _property_name(name: object, field: str) -> str:
    if not isinstance(name, str) or not PROPERTY_NAME.match(name):
        raise Rejected.because(
            "property_name_invalid",
            "a property name is 1 to 64 characters of letters, digits, _, . and -, not starting with a digit",
            field,
        )
    return name


def _aggregation(kind: str, property_name: str | None, time_unit: str | None) -> Aggregation:
    try:
        aggregation_kind = AggregationKind(kind)
    except ValueError:
        raise Rejected.because(
            "aggregation_unknown", f"aggregation is one of {', '.join(AggregationKind)}", "aggregation"
        ) from None
    if aggregation_kind is AggregationKind.COUNT:
        if property_name is not None:
            raise Rejected.because(
                "value_property_not_allowed", "a count meter has no value property", "value_property"
            )
    elif property_name is None:
        raise Rejected.because(
            "value_property_required", f"a {aggregation_kind} meter needs a value property", "value_property"
        )
    else:
        property_name = _property_name(property_name, "value_property")
    if aggregation_kind is not AggregationKind.TIME_WEIGHTED_SUM and time_unit is not None:
        raise Rejected.because("time_unit_not_allowed", "only a time_weighted_sum meter has a time unit", "time_unit")
    match aggregation_kind:
        case AggregationKind.COUNT:
            return Count()
        case AggregationKind.SUM:
            return Sum(_present(property_name))
        case AggregationKind.MAX:
            return Max(_present(property_name))
        case AggregationKind.MIN:
            return Min(_present(property_name))
        case AggregationKind.UNIQUE_COUNT:
            return UniqueCount(_present(property_name))
        case AggregationKind.LATEST:
            return Latest(_present(property_name))
        case AggregationKind.TIME_WEIGHTED_SUM:
            try:
                unit = TimeUnit(time_unit) if time_unit is not None else TimeUnit.HOUR
            except ValueError:
                raise Rejected.because(
                    "time_unit_unknown", f"time_unit is one of {', '.join(TimeUnit)}", "time_unit"
                ) from None
            return TimeWeightedSum(_present(property_name), unit)


def _present(value: str | None) -> str:
    if value is None:
        raise InvariantViolation("a value property was checked to be present")
    return value


def _filter(item: Mapping[str, object], index: int) -> PropertyFilter:
    field = f"filters[{index}]"
    property_name = _property_name(item.get("property"), f"{field}.property")
    try:
        operator = FilterOperator(str(item.get("operator")))
    except ValueError:
        raise Rejected.because(
            "filter_operator_unknown", f"operator is one of {', '.join(FilterOperator)}", f"{field}.operator"
        ) from None
    raw = item.get("value")
    value_field = f"{field}.value"
    value_type = item.get("value_type")
    if value_type is not None and value_type not in VALUE_TYPES:
        raise Rejected.because(
            "filter_value_type_unknown", f"value_type is one of {', '.join(VALUE_TYPES)}", f"{field}.value_type"
        )
    if operator is FilterOperator.IN:
        if not isinstance(raw, list | tuple) or not raw:
            raise Rejected.because("filter_value_invalid", "`in` needs a non-empty list of values", value_field)
        if len(raw) > FILTER_VALUES_MAX:
            raise Rejected.because(
                "filter_values_exceed_limit", f"`in` takes at most {FILTER_VALUES_MAX} values", value_field
            )
        values = tuple(_typed(value, value_type, f"{value_field}[{position}]") for position, value in enumerate(raw))
        if len({scalar_type(value) for value in values}) > 1:
            raise Rejected.because(
                "filter_values_must_share_a_type",
                "the values of `in` are all strings, numbers or booleans",
                value_field,
            )
    elif operator in COMPARISONS:
        if value_type not in (None, "number"):
            raise Rejected.because("filter_value_invalid", "a comparison needs a number", value_field)
        values = (_number(raw, value_field),)
    else:
        values = (_typed(raw, value_type, value_field),)
    return PropertyFilter(property_name, operator, values)


VALUE_TYPES = ("string", "number", "boolean")


def scalar_type(value: Scalar) -> str:
    """The JSON type of a filter operand: string, number or boolean."""
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, Decimal) else "string"


def _typed(value: object, value_type: object, field: str) -> Scalar:
    """An operand, of `value_type` when given (a number may then be a numeric string: JSON clients
    that read numbers as floats can send and receive them exactly as text)."""
    if value_type == "number":
        return _number(value, field)
    scalar = _scalar(value, field)
    if value_type is not None and scalar_type(scalar) != value_type:
        raise Rejected.because("filter_value_invalid", f"the value is not a {value_type}", field)
    return scalar


def _scalar(value: object, field: str) -> Scalar:
    if isinstance(value, float):
        raise TypeError("float is never used for quantities; pass a Decimal")
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise Rejected.because("filter_value_invalid", "a number must be finite", field)
        return value
    if isinstance(value, str):
        if len(value) > FILTER_TEXT_LENGTH_MAX:
            raise Rejected.because(
                "filter_value_invalid", f"a string value is at most {FILTER_TEXT_LENGTH_MAX} characters", field
            )
        return value
    raise Rejected.because("filter_value_invalid", "a filter value is a string, a number or a boolean", field)


def _number(value: object, field: str) -> Decimal:
    """A comparison operand: a number, or a string that reads as one."""
    if isinstance(value, str) and NUMERIC_TEXT.match(value) and len(value) <= NUMERIC_TEXT_LENGTH_MAX:
        return Decimal(value)
    scalar = _scalar(value, field) if not isinstance(value, str) else value
    if isinstance(scalar, Decimal):
        return scalar
    raise Rejected.because("filter_value_invalid", "a comparison needs a number", field)


def _group_by(keys: Sequence[str]) -> tuple[str, ...]:
    if len(keys) > GROUP_BY_MAX:
        raise Rejected.because(
            "group_by_exceeds_limit", f"a meter has at most {GROUP_BY_MAX} group_by keys", "group_by"
        )
    names = tuple(_property_name(key, f"group_by[{index}]") for index, key in enumerate(keys))
    if len(set(names)) != len(names):
        raise Rejected.because("group_by_keys_must_be_distinct", "a group_by key appears twice", "group_by")
    return names


# ----- the meter and its versions ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterLabels:
    """The parts of a meter that are not its definition: edited in place, never versioned."""

    code: str
    name: str
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not METER_CODE.match(self.code):
            raise Rejected.because(
                "meter_code_invalid",
                "a meter code is 1 to 63 characters of a-z, 0-9 and _, starting with a letter",
                "code",
            )
        if not 1 <= len(self.name) <= NAME_LENGTH_MAX:
            raise Rejected.because("meter_name_invalid", f"name is 1 to {NAME_LENGTH_MAX} characters", "name")
        if len(self.description) > DESCRIPTION_LENGTH_MAX:
            raise Rejected.because(
                "meter_description_too_long",
                f"description is at most {DESCRIPTION_LENGTH_MAX} characters",
                "description",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterVersion:
    """One immutable version of a meter, as usage queries and rating see it.

    `version_id` is the store's key for the version (rollups are kept per version).
    """

    code: str
    version: int
    version_id: int
    definition: MeterDefinition

    def __post_init__(self) -> None:
        require(self.version >= 1, "meter versions start at 1")


# Fields of a definition, in the order a change is reported.
DEFINITION_FIELDS = ("event_type", "aggregation", "value_property", "time_unit", "filters", "group_by")


def definition_changes(current: MeterDefinition, proposed: MeterDefinition) -> tuple[str, ...]:
    """The definition fields that differ: empty means the same meter version.

    Compared as documents, so `true` and `1` differ (as they do for events) while `1` and `1.0` do
    not (a filter matches the same events either way).
    """
    before, after = current.document(), proposed.document()
    return tuple(name for name in DEFINITION_FIELDS if _comparable(before[name]) != _comparable(after[name]))


def _comparable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_comparable(item) for item in value)
    if isinstance(value, dict):
        if set(value) == {"number"}:
            return ("number", Decimal(value["number"]))
        return tuple(sorted((key, _comparable(item)) for key, item in value.items()))
    return value
