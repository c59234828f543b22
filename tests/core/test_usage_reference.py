"""The reference aggregation and the rules behind it: hand-computed tables and properties."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.core.metering.aggregation import (
    EventCorrection,
    LevelSegment,
    MeteredEvent,
    dimension_text,
    distinct_key,
    effective_events,
    fold_time_weighted,
    numeric_value,
    reference_usage,
    time_weighted_quantity,
)
from tally.core.metering.meters import MeterDefinitionInput, MeterVersion, TimeUnit
from tally.core.metering.usage import (
    BUCKETS_MAX,
    MATCHED_EVENTS_LIMIT_MAX,
    MATCHED_EVENTS_WINDOWS_MAX,
    Bucket,
    Granularity,
    MatchedEventsQuery,
    UsageQuery,
    bucket_count,
    buckets,
    quantity_text,
)
from tally.core.rejections import Rejected

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _meter(aggregation: str = "count", value_property: str | None = None, **fields: Any) -> MeterVersion:
    definition = MeterDefinitionInput(
        event_type="call", aggregation=aggregation, value_property=value_property, **fields
    ).validate()
    return MeterVersion(code="m", version=1, version_id=1, definition=definition)


def _event(
    minutes: float, properties: dict[str, object], *, event_id: str | None = None, **fields: str
) -> MeteredEvent:
    return MeteredEvent(
        event_id=event_id or f"e{minutes}",
        customer=fields.get("customer", "acme"),
        type=fields.get("type", "call"),
        timestamp=T0 + timedelta(minutes=minutes),
        properties=properties,
    )


def _query(meter: MeterVersion, start: float = 0, end: float = 24 * 60, **fields: Any) -> UsageQuery:
    return UsageQuery(
        customer="acme",
        meter=meter,
        start=T0 + timedelta(minutes=start),
        end=T0 + timedelta(minutes=end),
        **fields,
    )


def _values(meter: MeterVersion, events: Sequence[MeteredEvent], **fields: Any) -> list[Decimal | None]:
    return [row.value for row in reference_usage(_query(meter, **fields), events).rows]


# ----- the rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, Decimal(3)),
        (Decimal("2.50"), Decimal("2.50")),
        ("12", Decimal(12)),
        ("-0.5", Decimal("-0.5")),
        ("+7", Decimal(7)),
        (".5", Decimal("0.5")),
        ("5.", Decimal(5)),
        ("1e3", Decimal(1000)),
        ("1E-2", Decimal("0.01")),
        ("1e100", None),  # exponent of three digits
        ("12abc", None),
        ("", None),
        (" 1", None),
        ("1_000", None),
        ("NaN", None),
        ("Infinity", None),
        ("0x10", None),
        ("1" * 81, None),  # longer than 80 characters
        (True, None),
        (None, None),
        ([1], None),
        ({"a": 1}, None),
    ],
)
def test_numeric_values(value: object, expected: Decimal | None) -> None:
    assert numeric_value(value) == expected


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError):
        numeric_value(0.5)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gpt", "gpt"),
        (None, None),
        (True, "true"),
        (Decimal("2.50"), "2.50"),
        (Decimal("1E+2"), "100"),
        (7, "7"),
        ([1, "a"], '[1, "a"]'),
        ({"bb": 1, "a": None}, '{"a": null, "bb": 1}'),
    ],
)
def test_dimension_texts(value: object, expected: str | None) -> None:
    assert dimension_text(value) == expected


def test_distinct_keys() -> None:
    assert distinct_key(1) == distinct_key(Decimal("1.00"))
    assert distinct_key("1") != distinct_key(1)
    assert distinct_key(True) is None
    assert distinct_key(None) is None
    assert distinct_key({"a": 1}) is None


def test_effective_events() -> None:
    events = [_event(1, {"v": 1}, event_id="a"), _event(2, {"v": 2}, event_id="b"), _event(3, {"v": 3}, event_id="c")]
    corrections = [
        EventCorrection("a", "amend", 0, {"v": 10}),
        EventCorrection("a", "amend", 2, {"v": 30}),
        EventCorrection("a", "amend", 1, {"v": 20}),
        EventCorrection("b", "retract", 3),
    ]
    effective = effective_events(events, corrections)
    assert [(event.event_id, event.properties) for event in effective] == [("a", {"v": 30}), ("c", {"v": 3})]


# ----- buckets ------------------------------------------------------------------------------------


def test_buckets_are_utc_aligned_and_clipped() -> None:
    start, end = T0 + timedelta(minutes=30), T0 + timedelta(hours=2, minutes=15)
    assert buckets(start, end, Granularity.HOUR) == (
        Bucket(start, T0 + timedelta(hours=1)),
        Bucket(T0 + timedelta(hours=1), T0 + timedelta(hours=2)),
        Bucket(T0 + timedelta(hours=2), end),
    )
    assert buckets(start, end, Granularity.TOTAL) == (Bucket(start, end),)
    months = buckets(datetime(2025, 11, 15, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC), Granularity.MONTH)
    assert [bucket.start.month for bucket in months] == [11, 12, 1]
    assert months[1] == Bucket(datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))


@given(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
    st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=300)),
    st.sampled_from(list(Granularity)),
)
def test_buckets_tile_the_window(start: datetime, length: timedelta, granularity: Granularity) -> None:
    end = start + length
    found = buckets(start, end, granularity)
    assert len(found) == bucket_count(start, end, granularity)
    assert found[0].start == start and found[-1].end == end
    assert all(left.end == right.start for left, right in itertools.pairwise(found))
    assert all(bucket.start < bucket.end for bucket in found)


def test_too_many_buckets_name_the_limit() -> None:
    meter = _meter()
    UsageQuery(customer="a", meter=meter, start=T0, end=T0 + timedelta(days=366), granularity=Granularity.HOUR)
    with pytest.raises(Rejected) as caught:
        UsageQuery(customer="a", meter=meter, start=T0, end=T0 + timedelta(days=367), granularity=Granularity.HOUR)
    assert caught.value.rejection.code == "usage_buckets_exceed_limit"
    assert str(BUCKETS_MAX) in caught.value.rejection.message


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"end": 0}, "time_range_inverted"),
        ({"start": 10, "end": 5}, "time_range_inverted"),
        ({"group_by": ("model",)}, "group_by_not_in_meter"),
        ({"timezone": "Europe/Paris"}, "timezone_not_supported"),
    ],
)
def test_query_rejections(fields: dict[str, Any], code: str) -> None:
    with pytest.raises(Rejected) as caught:
        _query(_meter(), **fields)
    assert caught.value.rejection.code == code


def _hours(start: float, end: float) -> tuple[datetime, datetime]:
    return T0 + timedelta(hours=start), T0 + timedelta(hours=end)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"customer": ""}, "customer_invalid"),
        ({"windows": ()}, "usage_windows_exceed_limit"),
        ({"windows": (_hours(0, 1),) * (MATCHED_EVENTS_WINDOWS_MAX + 1)}, "usage_windows_exceed_limit"),
        ({"windows": ((datetime(2026, 3, 1), T0 + timedelta(hours=1)),)}, "datetime_must_have_timezone"),
        ({"windows": (_hours(2, 2),)}, "time_range_inverted"),
        ({"windows": (_hours(3, 2),)}, "time_range_inverted"),
        ({"windows": (_hours(0, 2), _hours(1, 3))}, "usage_windows_must_be_ordered"),
        ({"windows": (_hours(4, 5), _hours(0, 1))}, "usage_windows_must_be_ordered"),
        ({"group": ()}, "group_must_match_meter"),
        ({"group": ("a", "b")}, "group_must_match_meter"),
        ({"after": (datetime(2026, 3, 1), "e1")}, "datetime_must_have_timezone"),
        ({"limit": 0}, "limit_out_of_range"),
        ({"limit": MATCHED_EVENTS_LIMIT_MAX + 1}, "limit_out_of_range"),
        ({"limit": True}, "limit_out_of_range"),
        # Precedence: the customer before the windows, the windows before the group and the limit.
        ({"customer": "", "windows": (), "limit": 0}, "customer_invalid"),
        ({"windows": (_hours(1, 0),), "group": (), "limit": 0}, "time_range_inverted"),
    ],
)
def test_matched_events_query_rejections(fields: dict[str, Any], code: str) -> None:
    base: dict[str, Any] = {
        "customer": "acme",
        "meter": _meter(group_by=("model",)),
        "windows": (_hours(0, 1), _hours(1, 2)),  # adjacent windows (a pause ended) are fine
        "group": ("gpt",),
    }
    MatchedEventsQuery(**base)
    with pytest.raises(Rejected) as caught:
        MatchedEventsQuery(**(base | fields))
    assert caught.value.rejection.code == code


def test_naive_times_are_refused() -> None:
    with pytest.raises(Rejected, match="datetime_must_have_timezone"):
        UsageQuery(customer="a", meter=_meter(), start=datetime(2026, 1, 1), end=T0)


@pytest.mark.parametrize(
    ("value", "text"), [(Decimal("2.500"), "2.5"), (Decimal("1E+3"), "1000"), (Decimal("-0.0"), "0"), (Decimal(0), "0")]
)
def test_quantity_text(value: Decimal, text: str) -> None:
    assert quantity_text(value) == text


# ----- aggregations, by hand -------------------------------------------------------------------------

EVENTS = [
    _event(10, {"tokens": 5, "model": "a", "user": "u1"}),
    _event(20, {"tokens": "2.5", "model": "b", "user": "u2"}),
    _event(30, {"tokens": Decimal("-1"), "model": "a", "user": "u1"}),
    _event(40, {"tokens": "n/a", "model": "a", "user": 7}),
    _event(50, {"model": "b", "user": Decimal("7.0")}),
    _event(55, {"tokens": 100, "model": "a"}, type="other"),
    _event(56, {"tokens": 100, "model": "a"}, customer="globex"),
    _event(24 * 60, {"tokens": 100, "model": "a"}),  # at the window's end: outside [start, end)
]


@pytest.mark.parametrize(
    ("aggregation", "value", "counted", "skipped"),
    [
        ("count", Decimal(5), 5, 0),
        ("sum", Decimal("6.5"), 3, 2),
        ("max", Decimal(5), 3, 2),
        ("min", Decimal(-1), 3, 2),
        ("latest", Decimal(-1), 3, 2),
        ("unique_count", Decimal(3), 5, 0),  # u1, u2 and the number 7 (7.0 is 7)
    ],
)
def test_each_aggregation(aggregation: str, value: Decimal, counted: int, skipped: int) -> None:
    meter = _meter(
        aggregation, None if aggregation == "count" else ("user" if aggregation == "unique_count" else "tokens")
    )
    result = reference_usage(_query(meter), EVENTS)
    assert [(row.value, row.event_count, row.skipped_events) for row in result.rows] == [(value, counted, skipped)]
    assert result.skipped_events == skipped


def test_unique_count_counts_numbers_by_value_and_text_apart() -> None:
    meter = _meter("unique_count", "user")
    events = [
        _event(1, {"user": 7}),
        _event(2, {"user": Decimal("7.00")}),
        _event(3, {"user": "7"}),
        _event(4, {"user": True}),
    ]
    result = reference_usage(_query(meter), events)
    assert (result.rows[0].value, result.rows[0].event_count, result.skipped_events) == (Decimal(2), 3, 1)


def test_latest_breaks_ties_by_event_id() -> None:
    meter = _meter("latest", "v")
    events = [_event(5, {"v": 1}, event_id="b"), _event(5, {"v": 2}, event_id="a"), _event(1, {"v": 3}, event_id="z")]
    assert _values(meter, events) == [Decimal(1)]


def test_grouping_and_buckets() -> None:
    meter = _meter("sum", "tokens", group_by=["model"])
    result = reference_usage(_query(meter, end=60, granularity=Granularity.HOUR, group_by=("model",)), EVENTS)
    assert [(row.group, row.value, row.event_count, row.skipped_events) for row in result.rows] == [
        (("a",), Decimal(4), 2, 1),
        (("b",), Decimal("2.5"), 1, 1),
    ]
    by_quarter = reference_usage(_query(meter, start=15, end=45, granularity=Granularity.HOUR), EVENTS)
    assert [(row.bucket.start.minute, row.value) for row in by_quarter.rows] == [(15, Decimal("1.5"))]


def test_empty_windows() -> None:
    window = {"start": 100, "end": 200, "granularity": Granularity.HOUR}
    assert _values(_meter(), EVENTS, **window) == [Decimal(0)] * 3  # [1:40, 2:00), [2:00, 3:00), [3:00, 3:20)
    assert _values(_meter("max", "tokens"), EVENTS, **window) == [None] * 3
    grouped = _meter("sum", "tokens", group_by=["model"])
    assert reference_usage(_query(grouped, group_by=("model",), **window), EVENTS).rows == ()


def test_filters() -> None:
    def count(*filters: dict[str, object]) -> Decimal | None:
        return _values(_meter(filters=list(filters)), EVENTS)[0]

    assert count({"property": "model", "operator": "equals", "value": "a"}) == 3
    assert count({"property": "model", "operator": "in", "value": ["a", "b"]}) == 5
    assert count({"property": "tokens", "operator": "gt", "value": Decimal(0)}) == 2  # 5, "2.5"
    assert count({"property": "tokens", "operator": "lte", "value": Decimal("2.5")}) == 2  # "2.5", -1
    assert count({"property": "user", "operator": "equals", "value": Decimal(7)}) == 2  # 7 and 7.0, not "7"
    assert count({"property": "tokens", "operator": "equals", "value": "2.5"}) == 1
    assert count({"property": "tokens", "operator": "equals", "value": Decimal("2.5")}) == 0  # "2.5" is text


# ----- time-weighted sums --------------------------------------------------------------------------


def test_time_weighted_sum_by_hand() -> None:
    meter = _meter("time_weighted_sum", "gb", group_by=["disk"])
    events = [
        _event(-120, {"gb": 10, "disk": "a"}),  # before the window: the level at its start
        _event(30, {"gb": 4, "disk": "a"}),
        _event(45, {"gb": "x", "disk": "a"}),  # skipped: the level stays 4
        _event(90, {"gb": 2, "disk": "b"}),
    ]
    # a: 10 GB for 30 min, then 4 GB for 90 min = 5 + 6 = 11 GB·h; b: 2 GB for 30 min = 1 GB·h.
    result = reference_usage(_query(meter, end=120), events)
    assert [(row.value, row.event_count, row.skipped_events) for row in result.rows] == [(Decimal(12), 2, 1)]
    hourly = reference_usage(_query(meter, end=120, granularity=Granularity.HOUR, group_by=("disk",)), events)
    assert [(row.group, row.value) for row in hourly.rows] == [
        (("a",), Decimal(7)),
        (("a",), Decimal(4)),
        (("b",), Decimal(0)),
        (("b",), Decimal(1)),
    ]
    # Without group_by the disks are one series (one gauge): 10 GB for 30 min, 4 for 60, 2 for 30.
    seconds = _meter("time_weighted_sum", "gb", time_unit="second")
    assert _values(seconds, events, end=120) == [Decimal(10 * 3600)]


def test_time_weighted_quantities_round_once_half_even() -> None:
    assert time_weighted_quantity(Decimal(3_600_000_000), TimeUnit.HOUR) == Decimal(1)
    assert time_weighted_quantity(Decimal(1), TimeUnit.HOUR) == Decimal("0.000000000277777778")
    assert time_weighted_quantity(Decimal(1), TimeUnit.SECOND) == Decimal("0.000001")


_moments = st.integers(min_value=-300, max_value=600)


@st.composite
def _gauge_events(draw: st.DrawFn) -> list[MeteredEvent]:
    count = draw(st.integers(0, 12))
    events = []
    for index in range(count):
        value: object = draw(st.one_of(st.integers(-5, 50), st.just("bad")))
        events.append(
            MeteredEvent(
                event_id=draw(st.sampled_from(["a", "b", "c"])) + str(index),
                customer="acme",
                type="call",
                timestamp=T0 + timedelta(minutes=draw(_moments), seconds=draw(st.sampled_from([0, 7, 59]))),
                properties={"gb": value, "disk": draw(st.sampled_from(["x", "y"]))},
            )
        )
    return events


@settings(max_examples=100, deadline=None)
@given(_gauge_events(), _moments, st.integers(1, 500), st.sampled_from(list(Granularity)))
def test_folding_point_segments_equals_integrating(
    events: list[MeteredEvent], start: int, length: int, granularity: Granularity
) -> None:
    """The store's way (fold mergeable segments after a carried-in level) equals the reference's."""
    meter = _meter("time_weighted_sum", "gb", group_by=["disk"])
    query = _query(meter, start=start, end=start + length, granularity=granularity, group_by=("disk",))
    expected = reference_usage(query, events)
    window = buckets(query.start, query.end, granularity)
    carry: dict[tuple[str | None, ...], tuple[datetime, str, Decimal]] = {}
    segments = []
    for event in events:
        value = numeric_value(event.properties["gb"])
        if value is None:
            continue
        series = (dimension_text(event.properties["disk"]),)
        if event.timestamp < query.start:
            if series not in carry or (event.timestamp, event.event_id) > carry[series][:2]:
                carry[series] = (event.timestamp, event.event_id, value)
        elif event.timestamp < query.end:
            segments.append(LevelSegment(series, event.timestamp, event.event_id, event.timestamp, value, Decimal(0)))
    folded = fold_time_weighted(query, window, {series: change[2] for series, change in carry.items()}, segments)
    by_cell = {(row.group, row.bucket): row.value for row in expected.rows}
    for series, totals in folded.items():
        for bucket, total in zip(window, totals, strict=True):
            assert by_cell[(series, bucket)] == time_weighted_quantity(total, TimeUnit.HOUR)
