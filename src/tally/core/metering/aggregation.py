"""Meter semantics, exactly: which events count, what their value is, and the reference aggregation.

`reference_usage(query, events)` computes a usage answer straight from effective events, the
simplest way that is obviously right. It is the definition the stores are checked against (tests
run the SQL rollups against it on random data); it is not fast and is not meant to be.

The rules every store follows (SQL mirrors each function here; see README.md):

- **Effective event**: the raw event with the properties of its latest amendment; an event with
  any retraction counts nowhere (`effective_events`).
- **Match**: same customer, `type == event_type`, and every filter holds (`matches`).
- **Value** (`numeric_value`): a JSON number, or a string that reads as one
  (`NUMERIC_TEXT_PATTERN`), of at most 80 characters. For sum, max, min, latest and
  time_weighted_sum an event without such a value is *skipped*: excluded from the value and
  counted in `skipped_events`. For unique_count the value is any string or number
  (`distinct_key`: numbers compare by value, `"1"` is not `1`); anything else is skipped.
- **Dimension value** (`dimension_text`): the property as text (as PostgreSQL's `->>` prints it),
  None when missing or JSON null.
- **Latest**: by (timestamp, event id), event ids compared by code point.
- **Time-weighted sum**: each series (customer and all the meter's group_by values) is a gauge
  whose level is the value of its latest event at or before t; the integral over the window in
  value × microseconds, reported in the meter's time unit (`time_weighted_quantity`).
"""

from __future__ import annotations

import decimal
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from tally.core.metering.meters import (
    NUMERIC_TEXT,
    NUMERIC_TEXT_LENGTH_MAX,
    AggregationKind,
    FilterOperator,
    MeterDefinition,
    PropertyFilter,
    Scalar,
    TimeUnit,
    TimeWeightedSum,
)
from tally.core.metering.usage import (
    ROWS_MAX,
    Bucket,
    GroupValues,
    UsageQuery,
    UsageResult,
    UsageRow,
    buckets,
)
from tally.core.rejections import InvariantViolation, Rejected, require

# Sums and integrals are exact: 1000 digits is far beyond any value of at most 80 characters times
# any count, and Inexact is trapped, so a silent rounding would be a crash, never a wrong figure.
EXACT = decimal.Context(
    prec=1000,
    rounding=decimal.ROUND_HALF_EVEN,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.Inexact, decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
# A time-weighted sum is exact in value × microseconds; converting to the meter's time unit divides
# (by 3.6e9 for hours), which does not always terminate, so it is rounded here, once, half-even.
TIME_WEIGHTED_DECIMAL_PLACES = 18
_TIME_WEIGHTED_QUANTUM = Decimal(1).scaleb(-TIME_WEIGHTED_DECIMAL_PLACES)
_DIVISION = decimal.Context(prec=200, rounding=decimal.ROUND_HALF_EVEN, traps=[decimal.InvalidOperation])
MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class MeteredEvent:
    """An event as meters see it (properties are JSON values: str, int, Decimal, bool, None, list, dict)."""

    event_id: str
    customer: str
    type: str
    timestamp: datetime
    properties: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class EventCorrection:
    """A retraction or an amendment. `position` orders corrections: the greatest amendment wins."""

    event_id: str
    kind: str  # "retract" or "amend"
    position: int
    properties: Mapping[str, object] | None = None


def effective_events(events: Iterable[MeteredEvent], corrections: Iterable[EventCorrection]) -> list[MeteredEvent]:
    """Events as they count: retracted ones gone, amended ones with their latest properties."""
    retracted: set[str] = set()
    amended: dict[str, EventCorrection] = {}
    for correction in corrections:
        if correction.kind == "retract":
            retracted.add(correction.event_id)
        else:
            require(correction.kind == "amend" and correction.properties is not None, "an amendment has properties")
            current = amended.get(correction.event_id)
            if current is None or correction.position > current.position:
                amended[correction.event_id] = correction
    result = []
    for event in events:
        if event.event_id in retracted:
            continue
        amendment = amended.get(event.event_id)
        if amendment is not None and amendment.properties is not None:
            result.append(
                MeteredEvent(event.event_id, event.customer, event.type, event.timestamp, amendment.properties)
            )
        else:
            result.append(event)
    return result


# ----- the rules ---------------------------------------------------------------------------------


def numeric_value(value: object) -> Decimal | None:
    """The value as a number if it is one (a JSON number, or a numeric string), else None."""
    if isinstance(value, float):
        raise TypeError("float is never used for quantities; parse JSON numbers as Decimal")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        value = Decimal(value)
    if isinstance(value, Decimal):
        if not value.is_finite() or len(pg_numeric_text(value)) > NUMERIC_TEXT_LENGTH_MAX:
            return None
        return value
    if isinstance(value, str) and len(value) <= NUMERIC_TEXT_LENGTH_MAX and NUMERIC_TEXT.match(value):
        return Decimal(value)
    return None


def pg_numeric_text(value: Decimal) -> str:
    """A number as PostgreSQL prints a numeric: plain notation, scale kept, no negative zero."""
    text = format(value, "f")
    if text.startswith("-") and not value:
        text = text[1:]
    return text


DistinctKey = tuple[str, object]


def distinct_key(value: object) -> DistinctKey | None:
    """What makes two values the same for unique_count: strings by text, numbers by value."""
    if isinstance(value, float):
        raise TypeError("float is never used for quantities; parse JSON numbers as Decimal")
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        number = Decimal(value)
        return ("number", number.normalize(EXACT)) if number.is_finite() else None
    return None


def dimension_text(value: object) -> str | None:
    """A property as a group_by value: its text as PostgreSQL's `->>` prints it; None if absent or null."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return _jsonb_text(value)


def _jsonb_text(value: object) -> str:
    if isinstance(value, float):
        raise TypeError("float is never used for quantities; parse JSON numbers as Decimal")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return pg_numeric_text(Decimal(value))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_jsonb_text(item) for item in value) + "]"
    if isinstance(value, Mapping):
        # jsonb keeps object keys ordered by length, then bytes.
        keys = sorted(value, key=lambda key: (len(key.encode()), key.encode()))
        return (
            "{" + ", ".join(f"{json.dumps(key, ensure_ascii=False)}: {_jsonb_text(value[key])}" for key in keys) + "}"
        )
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def json_equal(value: object, operand: Scalar) -> bool:
    """JSON equality of a property value and a filter operand (`true` is not `1`, `"1"` is not `1`)."""
    if isinstance(operand, bool):
        return isinstance(value, bool) and value is operand
    if isinstance(operand, Decimal):
        return isinstance(value, int | Decimal) and not isinstance(value, bool) and Decimal(value) == operand
    return isinstance(value, str) and value == operand


def filter_holds(condition: PropertyFilter, properties: Mapping[str, object]) -> bool:
    value = properties.get(condition.property)
    match condition.operator:
        case FilterOperator.EQUALS | FilterOperator.IN:
            return any(json_equal(value, operand) for operand in condition.values)
        case FilterOperator.GT | FilterOperator.GTE | FilterOperator.LT | FilterOperator.LTE:
            number = numeric_value(value)
            operand = condition.values[0]
            if not isinstance(operand, Decimal):
                raise InvariantViolation("a comparison operand is a number")
            if number is None:
                return False
            match condition.operator:
                case FilterOperator.GT:
                    return number > operand
                case FilterOperator.GTE:
                    return number >= operand
                case FilterOperator.LT:
                    return number < operand
                case _:
                    return number <= operand


def matches(definition: MeterDefinition, event: MeteredEvent) -> bool:
    return event.type == definition.event_type and all(
        filter_holds(condition, event.properties) for condition in definition.filters
    )


def series_of(definition: MeterDefinition, properties: Mapping[str, object]) -> GroupValues:
    """The event's values of all the meter's group_by keys: its series."""
    return tuple(dimension_text(properties.get(key)) for key in definition.group_by)


def time_weighted_quantity(integral_microseconds: Decimal, unit: TimeUnit) -> Decimal:
    """Value × microseconds to value × `unit`, rounded half-even to 18 decimal places."""
    quotient = _DIVISION.divide(integral_microseconds, Decimal(unit.microseconds))
    return quotient.quantize(_TIME_WEIGHTED_QUANTUM, context=_DIVISION)


def microseconds_between(start: datetime, end: datetime) -> int:
    return (end - start) // MICROSECOND


# ----- assembling an answer ----------------------------------------------------------------------


@dataclass(slots=True)
class Cell:
    """What one (group, bucket) holds before it becomes a row."""

    value: Decimal | None = None
    event_count: int = 0
    skipped_events: int = 0


def empty_value(kind: AggregationKind) -> Decimal | None:
    """The value of a bucket without any counted event."""
    if kind in (AggregationKind.MAX, AggregationKind.MIN, AggregationKind.LATEST):
        return None
    return Decimal(0)


def group_sort_key(group: GroupValues) -> tuple[tuple[bool, str], ...]:
    return tuple((value is not None, value or "") for value in group)


def assemble(query: UsageQuery, cells: Mapping[tuple[GroupValues, int], Cell], source: str) -> UsageResult:
    """Rows for every bucket of every group that has a cell (and the empty group when not grouping)."""
    window_buckets = buckets(query.start, query.end, query.granularity)
    groups = {group for group, _ in cells}
    if not query.group_by:
        groups.add(())
    if len(groups) * len(window_buckets) > ROWS_MAX:
        raise Rejected.because(
            "usage_rows_exceed_limit",
            f"{len(groups)} groups × {len(window_buckets)} buckets exceeds ROWS_MAX = {ROWS_MAX}: "
            "group by fewer keys, or use a coarser granularity",
            "group_by",
        )
    kind = query.meter.definition.kind
    rows = []
    skipped_total = 0
    for group in sorted(groups, key=group_sort_key):
        for index, bucket in enumerate(window_buckets):
            cell = cells.get((group, index))
            if cell is None:
                rows.append(UsageRow(bucket, group, empty_value(kind), 0, 0))
                continue
            value = cell.value if cell.value is not None else empty_value(kind)
            rows.append(UsageRow(bucket, group, value, cell.event_count, cell.skipped_events))
            skipped_total += cell.skipped_events
    return UsageResult(query=query, rows=tuple(rows), skipped_events=skipped_total, source=source)


# ----- time-weighted sums from mergeable segments ------------------------------------------------


@dataclass(frozen=True, slots=True)
class LevelSegment:
    """What a span of one series' events contributes to a time-weighted sum, mergeable in order:
    its first and last level changes and the integral between them (value × microseconds).

    A single event is a segment with first == last and a zero integral; a rollup hour is the
    summary of that hour's events. Segments of one series never overlap.
    """

    series: GroupValues
    first_at: datetime
    first_event_id: str
    last_at: datetime
    last_value: Decimal
    integral: Decimal


def fold_time_weighted(
    query: UsageQuery,
    window_buckets: Sequence[Bucket],
    carry_in: Mapping[GroupValues, Decimal],
    segments: Iterable[LevelSegment],
) -> dict[GroupValues, list[Decimal]]:
    """Integrals (value × microseconds) per series and bucket, from the level each series had
    before the window (`carry_in`) and its segments inside it."""
    by_series: dict[GroupValues, list[LevelSegment]] = defaultdict(list)
    for segment in segments:
        by_series[segment.series].append(segment)
    starts = [bucket.start for bucket in window_buckets]
    result: dict[GroupValues, list[Decimal]] = {}
    for series in set(by_series) | set(carry_in):
        ordered = sorted(by_series.get(series, []), key=lambda item: (item.first_at, item.first_event_id))
        totals = [Decimal(0)] * len(window_buckets)
        level = carry_in.get(series)
        cursor = window_buckets[0].start
        position = 0
        for index, bucket in enumerate(window_buckets):
            total = Decimal(0)
            while position < len(ordered) and ordered[position].first_at < bucket.end:
                segment = ordered[position]
                require(
                    segment.first_at >= starts[index] and segment.last_at < bucket.end, "a segment is in one bucket"
                )
                if level is not None:
                    total = EXACT.add(
                        total, EXACT.multiply(level, Decimal(microseconds_between(cursor, segment.first_at)))
                    )
                total = EXACT.add(total, segment.integral)
                level, cursor = segment.last_value, segment.last_at
                position += 1
            if level is not None:
                total = EXACT.add(total, EXACT.multiply(level, Decimal(microseconds_between(cursor, bucket.end))))
            cursor = bucket.end
            totals[index] = total
        require(position == len(ordered), "every segment lies inside the window")
        result[series] = totals
    return result


# ----- the reference -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Accumulator:
    counted: int = 0
    skipped: int = 0
    values: list[Decimal] = field(default_factory=list)
    distinct: set[DistinctKey] = field(default_factory=set)
    latest: tuple[datetime, str, Decimal] | None = None


def reference_usage(query: UsageQuery, events: Iterable[MeteredEvent]) -> UsageResult:
    """The usage answer computed directly from effective events (any customers, any times)."""
    definition = query.meter.definition
    window_buckets = buckets(query.start, query.end, query.granularity)
    start, end = query.start_utc, query.end_utc
    positions = query.group_positions()
    matching = [event for event in events if event.customer == query.customer and matches(definition, event)]

    def bucket_of(moment: datetime) -> int | None:
        for index, bucket in enumerate(window_buckets):
            if bucket.start <= moment < bucket.end:
                return index
        return None

    def project(series: GroupValues) -> GroupValues:
        return tuple(series[position] for position in positions)

    if isinstance(definition.aggregation, TimeWeightedSum):
        return _reference_time_weighted(
            query,
            aggregation=definition.aggregation,
            matching=matching,
            window_buckets=window_buckets,
            bucket_of=bucket_of,
            project=project,
        )

    kind = definition.kind
    accumulators: dict[tuple[GroupValues, int], _Accumulator] = defaultdict(_Accumulator)
    for event in matching:
        index = bucket_of(event.timestamp)
        if index is None or not start <= event.timestamp < end:
            continue
        cell = accumulators[(project(series_of(definition, event.properties)), index)]
        raw = event.properties.get(definition.value_property) if definition.value_property else None
        if kind is AggregationKind.COUNT:
            cell.counted += 1
        elif kind is AggregationKind.UNIQUE_COUNT:
            key = distinct_key(raw)
            if key is None:
                cell.skipped += 1
            else:
                cell.counted += 1
                cell.distinct.add(key)
        else:
            number = numeric_value(raw)
            if number is None:
                cell.skipped += 1
                continue
            cell.counted += 1
            cell.values.append(number)
            candidate = (event.timestamp, event.event_id, number)
            if cell.latest is None or (candidate[0], candidate[1]) > (cell.latest[0], cell.latest[1]):
                cell.latest = candidate
    cells = {
        key: Cell(_reference_value(kind, accumulator), accumulator.counted, accumulator.skipped)
        for key, accumulator in accumulators.items()
    }
    return assemble(query, cells, "reference")


def _reference_value(kind: AggregationKind, accumulator: _Accumulator) -> Decimal | None:
    match kind:
        case AggregationKind.COUNT:
            return Decimal(accumulator.counted)
        case AggregationKind.UNIQUE_COUNT:
            return Decimal(len(accumulator.distinct))
        case AggregationKind.SUM:
            total = Decimal(0)
            for value in accumulator.values:
                total = EXACT.add(total, value)
            return total
        case AggregationKind.MAX:
            return max(accumulator.values) if accumulator.values else None
        case AggregationKind.MIN:
            return min(accumulator.values) if accumulator.values else None
        case AggregationKind.LATEST:
            return accumulator.latest[2] if accumulator.latest else None
        case AggregationKind.TIME_WEIGHTED_SUM:  # pragma: no cover - handled apart
            raise AssertionError("time-weighted sums are computed by _reference_time_weighted")


def _reference_time_weighted(
    query: UsageQuery,
    *,
    aggregation: TimeWeightedSum,
    matching: Sequence[MeteredEvent],
    window_buckets: Sequence[Bucket],
    bucket_of: Callable[[datetime], int | None],
    project: Callable[[GroupValues], GroupValues],
) -> UsageResult:
    """Integrate each series' step function over each bucket, directly from its events."""
    definition = query.meter.definition
    start, end = query.start_utc, query.end_utc
    levels: dict[GroupValues, list[tuple[datetime, str, Decimal]]] = defaultdict(list)
    cells: dict[tuple[GroupValues, int], Cell] = {}
    for event in matching:
        series = series_of(definition, event.properties)
        number = numeric_value(event.properties.get(aggregation.property))
        index = bucket_of(event.timestamp) if start <= event.timestamp < end else None
        if number is None:
            if index is not None:
                cells.setdefault((project(series), index), Cell()).skipped_events += 1
            continue
        if event.timestamp < end:
            levels[series].append((event.timestamp, event.event_id, number))
        if index is not None:
            cells.setdefault((project(series), index), Cell()).event_count += 1
    integrals: dict[tuple[GroupValues, int], Decimal] = defaultdict(Decimal)
    for series, changes in levels.items():
        changes.sort(key=lambda change: (change[0], change[1]))
        group = project(series)
        for index, bucket in enumerate(window_buckets):
            total = Decimal(0)
            for position, (moment, _, value) in enumerate(changes):
                following = changes[position + 1][0] if position + 1 < len(changes) else None
                low = max(moment, bucket.start)
                high = bucket.end if following is None else min(following, bucket.end)
                if low < high:
                    total = EXACT.add(total, EXACT.multiply(value, Decimal(microseconds_between(low, high))))
            integrals[(group, index)] = EXACT.add(integrals[(group, index)], total)
    for key, integral in integrals.items():
        cell = cells.setdefault(key, Cell())
        cell.value = time_weighted_quantity(integral, aggregation.time_unit)
    for cell in cells.values():
        if cell.value is None:
            cell.value = Decimal(0)
    return assemble(query, cells, "reference")
