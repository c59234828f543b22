"""Billing cycles: month-end anchors, leap years, calendar units, DST, day positions, limits."""

from __future__ import annotations

import calendar
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tally.core.periods import Interval, IntervalUnit, Period
from tally.core.rejections import Rejected
from tally.core.subscriptions import (
    AnchorKind,
    BillingAnchor,
    BillingCycle,
    BillingEventKind,
    ProrationBasis,
    Started,
    Timeline,
    billing_events,
)
from tally.core.subscriptions.cycles import zone
from tests.core.subscriptions.builders import DAY, MONTH, QUARTER, WEEK, YEAR, fee, local, utc
from tests.core.subscriptions.reference import wall_instant

ANNIVERSARY = BillingAnchor(AnchorKind.ANNIVERSARY)
CALENDAR = BillingAnchor(AnchorKind.CALENDAR)


def cycle(start: datetime, interval: Interval, anchor: BillingAnchor = ANNIVERSARY, tz: str = "UTC") -> BillingCycle:
    return BillingCycle.for_subscription(anchor=anchor, interval=interval, start=start, timezone=ZoneInfo(tz))


def boundaries(c: BillingCycle, count: int, first: int = 0) -> list[str]:
    return [c.boundary(index).astimezone(c.timezone).date().isoformat() for index in range(first, first + count)]


@pytest.mark.parametrize(
    ("start", "interval", "expected"),
    [
        # Month-end anchors come back to the 31st: never drift to the 28th/29th.
        (utc(2024, 1, 31), MONTH, ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31"]),
        (utc(2023, 1, 31), MONTH, ["2023-01-31", "2023-02-28", "2023-03-31", "2023-04-30", "2023-05-31"]),
        (utc(2024, 1, 30), MONTH, ["2024-01-30", "2024-02-29", "2024-03-30", "2024-04-30", "2024-05-30"]),
        (utc(2023, 12, 31), MONTH, ["2023-12-31", "2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30"]),
        # Leap day anniversaries: Feb 28 in common years, Feb 29 again in leap years.
        (utc(2024, 2, 29), YEAR, ["2024-02-29", "2025-02-28", "2026-02-28", "2027-02-28", "2028-02-29"]),
        (utc(2024, 2, 29), MONTH, ["2024-02-29", "2024-03-29", "2024-04-29", "2024-05-29", "2024-06-29"]),
        # Quarters from a month end.
        (utc(2023, 11, 30), QUARTER, ["2023-11-30", "2024-02-29", "2024-05-30", "2024-08-30", "2024-11-30"]),
        (utc(2024, 5, 31), QUARTER, ["2024-05-31", "2024-08-31", "2024-11-30", "2025-02-28", "2025-05-31"]),
        (
            utc(2024, 1, 31),
            Interval(IntervalUnit.MONTH, 2),
            ["2024-01-31", "2024-03-31", "2024-05-31", "2024-07-31", "2024-09-30"],
        ),
        (utc(2024, 1, 3), WEEK, ["2024-01-03", "2024-01-10", "2024-01-17", "2024-01-24", "2024-01-31"]),
        (utc(2024, 2, 27), DAY, ["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01", "2024-03-02"]),
        (
            utc(2024, 2, 27),
            Interval(IntervalUnit.DAY, 3),
            ["2024-02-27", "2024-03-01", "2024-03-04", "2024-03-07", "2024-03-10"],
        ),
    ],
)
def test_anniversary_boundaries(start: datetime, interval: Interval, expected: list[str]) -> None:
    assert boundaries(cycle(start, interval), 5) == expected


def test_month_end_anchor_going_backwards_is_the_same_grid() -> None:
    c = cycle(utc(2024, 3, 31, 9, 30), MONTH)
    assert boundaries(c, 4, first=-3) == ["2023-12-31", "2024-01-31", "2024-02-29", "2024-03-31"]
    assert c.boundary(-2).time().isoformat() == "09:30:00"


@pytest.mark.parametrize(
    ("start", "interval", "period"),
    [
        (utc(2024, 1, 15, 12), MONTH, (utc(2024, 1, 1), utc(2024, 2, 1))),
        (utc(2024, 5, 20), QUARTER, (utc(2024, 4, 1), utc(2024, 7, 1))),
        (utc(2024, 12, 31, 23, 59), QUARTER, (utc(2024, 10, 1), utc(2025, 1, 1))),
        (utc(2024, 7, 4), YEAR, (utc(2024, 1, 1), utc(2025, 1, 1))),
        # 2024-01-10 is a Wednesday: ISO weeks start on Monday.
        (utc(2024, 1, 10, 8), WEEK, (utc(2024, 1, 8), utc(2024, 1, 15))),
        (utc(2024, 1, 10, 8), DAY, (utc(2024, 1, 10), utc(2024, 1, 11))),
        (utc(2024, 2, 10), Interval(IntervalUnit.MONTH, 3), (utc(2024, 2, 1), utc(2024, 5, 1))),
    ],
)
def test_calendar_anchor_periods(start: datetime, interval: Interval, period: tuple[datetime, datetime]) -> None:
    assert cycle(start, interval, CALENDAR).period_containing(start) == Period(*period)


@pytest.mark.parametrize(
    ("day", "start", "expected"),
    [
        # The first full period starts on the first such day on or after the start's date.
        (15, utc(2024, 3, 20, 10), ["2024-04-15", "2024-05-15", "2024-06-15"]),
        (15, utc(2024, 3, 15, 10), ["2024-03-15", "2024-04-15", "2024-05-15"]),
        (31, utc(2023, 2, 10), ["2023-02-28", "2023-03-31", "2023-04-30"]),
        (30, utc(2024, 1, 31), ["2024-02-29", "2024-03-30", "2024-04-30"]),
        (1, utc(2024, 12, 2), ["2025-01-01", "2025-02-01", "2025-03-01"]),
    ],
)
def test_day_of_month_anchor(day: int, start: datetime, expected: list[str]) -> None:
    c = cycle(start, MONTH, BillingAnchor(AnchorKind.DAY_OF_MONTH, day))
    assert boundaries(c, 3) == expected
    assert c.boundary(0).time().isoformat() == "00:00:00"


@pytest.mark.parametrize(
    ("tz", "start", "period", "hours"),
    [
        # Local midnights: the UTC offset moves with DST, so March is an hour short, November long.
        ("America/New_York", utc(2024, 3, 15), (utc(2024, 3, 1, 5), utc(2024, 4, 1, 4)), 31 * 24 - 1),
        ("America/New_York", utc(2024, 11, 15), (utc(2024, 11, 1, 4), utc(2024, 12, 1, 5)), 30 * 24 + 1),
        ("Europe/Berlin", utc(2024, 3, 15), (utc(2024, 2, 29, 23), utc(2024, 3, 31, 22)), 31 * 24 - 1),
        ("Europe/Berlin", utc(2024, 10, 15), (utc(2024, 9, 30, 22), utc(2024, 10, 31, 23)), 31 * 24 + 1),
        ("Europe/Berlin", utc(2024, 3, 31, 12), (utc(2024, 3, 30, 23), utc(2024, 3, 31, 22)), 23),
        ("Europe/Berlin", utc(2024, 10, 27, 12), (utc(2024, 10, 26, 22), utc(2024, 10, 27, 23)), 25),
        ("America/New_York", utc(2024, 3, 10, 12), (utc(2024, 3, 10, 5), utc(2024, 3, 11, 4)), 23),
        ("America/New_York", utc(2024, 11, 3, 12), (utc(2024, 11, 3, 4), utc(2024, 11, 4, 5)), 25),
    ],
)
def test_calendar_boundaries_are_local_midnights(
    tz: str, start: datetime, period: tuple[datetime, datetime], hours: int
) -> None:
    interval = DAY if hours < 48 else MONTH
    found = cycle(start, interval, CALENDAR, tz).period_containing(start)
    assert found == Period(*period)
    assert found.duration == timedelta(hours=hours)


def test_anniversary_keeps_local_wall_time_across_dst() -> None:
    c = cycle(local("America/New_York", 2024, 2, 15, 9, 0), MONTH, tz="America/New_York")
    assert [c.boundary(k) for k in range(3)] == [utc(2024, 2, 15, 14), utc(2024, 3, 15, 13), utc(2024, 4, 15, 13)]


def test_wall_time_in_a_gap_moves_forward_and_an_ambiguous_one_is_its_first_occurrence() -> None:
    # 02:30 does not exist on 2024-03-10 in New York (02:00 → 03:00): it becomes 03:30 EDT.
    gap = cycle(local("America/New_York", 2024, 3, 9, 2, 30), DAY, tz="America/New_York")
    assert gap.boundary(1) == local("America/New_York", 2024, 3, 10, 3, 30)
    assert gap.boundary(2) == local("America/New_York", 2024, 3, 11, 2, 30)
    # 01:30 happens twice on 2024-11-03: the first (EDT, UTC-4) is the boundary.
    repeat = cycle(local("America/New_York", 2024, 11, 2, 1, 30), DAY, tz="America/New_York")
    assert repeat.boundary(1) == utc(2024, 11, 3, 5, 30)
    assert repeat.boundary(2) == utc(2024, 11, 4, 6, 30)


@pytest.mark.parametrize(
    ("moment", "seconds", "days"),
    [
        (utc(2024, 3, 1, 5), 0, 0),
        (utc(2024, 3, 2, 4, 59, 59), 86_399, 0),
        (utc(2024, 3, 2, 5), 86_400, 1),
        # After the spring-forward night a local midnight is 04:00 UTC: days count local dates.
        (utc(2024, 3, 15, 4), 14 * 86_400 - 3_600, 14),
        (utc(2024, 4, 1, 4), 31 * 86_400 - 3_600, 31),
    ],
)
def test_positions_in_seconds_and_local_days(moment: datetime, seconds: int, days: int) -> None:
    c = cycle(utc(2024, 3, 10), MONTH, CALENDAR, "America/New_York")
    period = c.period_containing(utc(2024, 3, 10))
    assert c.position(period, moment, ProrationBasis.SECOND) == seconds
    assert c.position(period, moment, ProrationBasis.DAY) == days


def test_billing_days_never_run_backwards_in_a_repeated_hour() -> None:
    # Anchored at 01:30 local: on 2024-11-03 01:10 EST comes after 01:45 EDT but reads earlier.
    c = cycle(local("America/New_York", 2024, 10, 20, 1, 30), MONTH, tz="America/New_York")
    period = c.period_containing(utc(2024, 11, 1))
    first, later = utc(2024, 11, 3, 5, 45), utc(2024, 11, 3, 6, 10)  # 01:45 EDT, then 01:10 EST
    assert first.astimezone(c.timezone).hour == 1 and later.astimezone(c.timezone).minute == 10
    assert c.position(period, first, ProrationBasis.DAY) <= c.position(period, later, ProrationBasis.DAY)


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda: BillingAnchor(AnchorKind.DAY_OF_MONTH), "anchor_day_of_month_out_of_range"),
        (lambda: BillingAnchor(AnchorKind.DAY_OF_MONTH, 0), "anchor_day_of_month_out_of_range"),
        (lambda: BillingAnchor(AnchorKind.DAY_OF_MONTH, 32), "anchor_day_of_month_out_of_range"),
        (lambda: BillingAnchor(AnchorKind.CALENDAR, 5), "anchor_day_of_month_not_allowed"),
        (lambda: zone("Mars/Olympus_Mons"), "timezone_unknown"),
        (lambda: zone("../etc/passwd"), "timezone_unknown"),
        (lambda: zone(""), "timezone_unknown"),
        (lambda: cycle(utc(2024, 1, 1), DAY).periods(utc(2024, 1, 1), utc(2040, 1, 1)), "billing_periods_exceed_limit"),
    ],
)
def test_bad_cycle_input(call: object, code: str) -> None:
    with pytest.raises(Rejected) as error:
        call()  # type: ignore[operator]
    assert error.value.rejection.code == code


ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata", "America/Santiago"]
INTERVALS = [DAY, WEEK, MONTH, QUARTER, YEAR, Interval(IntervalUnit.MONTH, 2), Interval(IntervalUnit.DAY, 10)]
ANCHORS = [ANNIVERSARY, CALENDAR, *(BillingAnchor(AnchorKind.DAY_OF_MONTH, day) for day in (1, 15, 28, 29, 30, 31))]
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1)).map(
    lambda moment: moment.replace(tzinfo=UTC)
)


@given(
    tz=st.sampled_from(ZONES),
    interval=st.sampled_from(INTERVALS),
    anchor=st.sampled_from(ANCHORS),
    start=moments,
    span_days=st.integers(min_value=1, max_value=800),
)
def test_periods_tile_time_without_gaps_or_overlaps(
    tz: str, interval: Interval, anchor: BillingAnchor, start: datetime, span_days: int
) -> None:
    c = cycle(start, interval, anchor, tz)
    end = start + timedelta(days=span_days)
    periods = c.periods(start, end)
    assert periods[0].contains(start)
    assert periods[-1].contains(end - timedelta(microseconds=1))
    for before, after in itertools.pairwise(periods):
        assert before.end == after.start
        assert before.start < before.end
    for period in periods:
        assert c.period_containing(period.start) == period
        assert c.position(period, period.end, ProrationBasis.SECOND) == int(period.duration.total_seconds())


@given(tz=st.sampled_from(ZONES), start=moments, index=st.integers(min_value=-30, max_value=300))
def test_month_boundaries_aim_at_the_anchor_day_and_never_drift(tz: str, start: datetime, index: int) -> None:
    c = cycle(start, MONTH, ANNIVERSARY, tz)
    wall = c.boundary(index).astimezone(ZoneInfo(tz))
    anchor_day = start.astimezone(ZoneInfo(tz)).day
    assert wall.day == min(anchor_day, calendar.monthrange(wall.year, wall.month)[1])


@pytest.mark.parametrize("fold", [0, 1])
@pytest.mark.parametrize("interval", [DAY, WEEK, MONTH, YEAR])
def test_an_anniversary_in_the_repeated_hour_starts_its_first_period_at_the_start(
    interval: Interval, fold: int
) -> None:
    # 01:30 happens twice on 2024-11-03 in New York: 05:30 UTC (EDT), then 06:30 UTC (EST).
    # Aware datetimes in a repeated hour never compare equal across zones (PEP 495): compare in UTC.
    start = local("America/New_York", 2024, 11, 3, 1, 30, fold=fold).astimezone(UTC)
    assert start == utc(2024, 11, 3, 5 + fold, 30)
    c = cycle(start, interval, tz="America/New_York")
    assert c.boundary(0) == start
    assert c.period_containing(start).start == start
    assert c.index_of(start) == 0
    # Later boundaries keep the wall time 01:30; none of them is ambiguous.
    assert c.boundary(1).astimezone(c.timezone).time().isoformat() == "01:30:00"


def test_a_start_in_the_second_occurrence_bills_a_full_first_period() -> None:
    start = utc(2024, 11, 3, 6, 30)  # the second 01:30, EST
    timeline = Timeline("sub_1", (Started(effective_at=start, items=(fee("p", "30"),), timezone="America/New_York"),))
    fees = [e for e in billing_events(timeline, through=start).events if e.kind is BillingEventKind.FIXED_FEE]
    assert len(fees) == 1
    assert fees[0].service_period.start == start
    assert fees[0].proration is not None and fees[0].proration.is_full
    assert fees[0].amount == 30


def test_daily_boundaries_from_the_second_occurrence_keep_to_it_in_later_repeated_hours() -> None:
    # A daily cycle anchored at the second 01:30 meets the repeated hour again a year later.
    c = cycle(utc(2024, 11, 3, 6, 30), DAY, tz="America/New_York")
    # 2025-11-02 is also a fall-back day: its second 01:30 is 06:30 UTC.
    assert c.boundary(364) == utc(2025, 11, 2, 6, 30)
    # A gap is still read with the offset before it, whatever the reference's fold.
    # 2025-03-09 01:30 exists (EST); the day after, 01:30 is EDT.
    assert c.boundary(c.index_of(utc(2025, 3, 9, 12))) == utc(2025, 3, 9, 6, 30)
    assert c.boundary(c.index_of(utc(2025, 3, 10, 12))) == utc(2025, 3, 10, 5, 30)


@pytest.mark.parametrize(
    ("start", "expected_first_boundaries"),
    [
        # A daily anniversary at 02:30 the day before spring forward: 02:30 does not exist, 03:30 EDT.
        (
            local("America/New_York", 2024, 3, 9, 2, 30),
            [utc(2024, 3, 9, 7, 30), utc(2024, 3, 10, 7, 30), utc(2024, 3, 11, 6, 30)],
        ),
        # Europe/Berlin jumps 02:00 → 03:00 on 2024-03-31.
        (
            local("Europe/Berlin", 2024, 3, 30, 2, 15),
            [utc(2024, 3, 30, 1, 15), utc(2024, 3, 31, 1, 15), utc(2024, 4, 1, 0, 15)],
        ),
    ],
)
def test_spring_forward_gaps_move_a_boundary_forward_and_periods_still_tile(
    start: datetime, expected_first_boundaries: list[datetime]
) -> None:
    tz = str(start.tzinfo)
    c = cycle(start, DAY, tz=tz)
    assert [c.boundary(k) for k in range(3)] == expected_first_boundaries
    periods = c.periods(start, start + timedelta(days=3))
    assert periods[0].start == start
    assert all(before.end == after.start for before, after in itertools.pairwise(periods))


@given(tz=st.sampled_from(ZONES), interval=st.sampled_from(INTERVALS), start=moments)
def test_an_anniversary_cycle_begins_exactly_at_the_start(tz: str, interval: Interval, start: datetime) -> None:
    c = cycle(start, interval, ANNIVERSARY, tz)
    assert c.boundary(0) == start
    assert c.period_containing(start).start == start


DST_ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Santiago"]


def _transitions(tz: str, year: int) -> list[datetime]:
    """The UTC instants at which `tz` changes its offset in `year`, found to the quarter hour."""
    zone_info = ZoneInfo(tz)
    moment, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    step = timedelta(minutes=15)
    found = []
    while moment < end:
        if moment.astimezone(zone_info).utcoffset() != (moment + step).astimezone(zone_info).utcoffset():
            found.append(moment + step)
        moment += step
    return found


TRANSITIONS = [(tz, moment) for tz in DST_ZONES for moment in _transitions(tz, 2025)]


@given(
    transition=st.sampled_from(TRANSITIONS),
    offset_seconds=st.integers(min_value=-3 * 3600, max_value=3 * 3600),
    interval=st.sampled_from([DAY, WEEK, MONTH, YEAR]),
    basis=st.sampled_from(ProrationBasis),
)
def test_anniversaries_started_around_a_clock_change_bill_a_full_first_period(
    transition: tuple[str, datetime], offset_seconds: int, interval: Interval, basis: ProrationBasis
) -> None:
    # Starts in the hours around each change of offset: in a repeated hour (either pass), right
    # after a gap, and on either side. The first period starts at the start; periods tile; a fee
    # started there is charged in full.
    tz, moment = transition
    start = moment + timedelta(seconds=offset_seconds)
    c = cycle(start, interval, ANNIVERSARY, tz)
    assert c.boundary(0) == start
    periods = c.periods(start, start + timedelta(days=800))
    assert periods[0].start == start
    assert all(before.end == after.start for before, after in itertools.pairwise(periods))
    assert c.position(periods[0], periods[0].start, basis) == 0
    timeline = Timeline(
        "sub_1", (Started(effective_at=start, items=(fee("p", "30", interval),), timezone=tz, proration_basis=basis),)
    )
    first = billing_events(timeline, through=start).events
    assert [(event.kind, event.amount) for event in first] == [(BillingEventKind.FIXED_FEE, 30)]


def _boundary_from_scratch(c: BillingCycle, index: int) -> datetime:
    """Boundary `index` of `c` computed here without the cycle: the reference wall time moved by
    `index` intervals (month-based ones aiming at the anchor day, clamped to short months), placed
    in the zone by the reference model."""
    reference, months, days = c.reference, c.interval.months, c.interval.days
    if months is not None:
        year, month = divmod(reference.year * 12 + reference.month - 1 + index * months, 12)
        day = min(c.day_of_month, calendar.monthrange(year, month + 1)[1])
        wall = datetime.combine(datetime(year, month + 1, day).date(), reference.time())
    else:
        assert days is not None
        wall = reference + timedelta(days=index * days)
    return wall_instant(c.timezone, wall, second_pass=reference.fold == 1)


near_clock_changes = st.builds(
    lambda moment, seconds: moment + timedelta(seconds=seconds),
    st.sampled_from([moment for _, moment in TRANSITIONS]),
    st.integers(min_value=-3 * 3600, max_value=3 * 3600),
)
questions = st.lists(
    st.one_of(
        st.tuples(st.just("boundary"), st.integers(min_value=-40, max_value=40)),
        st.tuples(st.just("period"), st.integers(min_value=-40, max_value=40)),
        st.tuples(st.just("index"), st.integers(min_value=-400 * 86_400, max_value=1_200 * 86_400)),
        # Moments within two hours of boundary k, and the moment an hour later (a repeated hour's
        # two passes share a wall time).
        st.tuples(st.just("near"), st.integers(min_value=-40, max_value=40), st.integers(-7_200, 7_200)),
    ),
    min_size=1,
    max_size=40,
)


@given(
    tz=st.sampled_from(ZONES),
    interval=st.sampled_from(INTERVALS),
    anchor=st.sampled_from(ANCHORS),
    start=st.one_of(moments, near_clock_changes),
    asked=questions,
)
# Daily from the first 01:30 of New York's fall-back night: 01:00 before the start and 01:00 an
# hour later (the second pass, after the start) are one wall time in two periods.
@example(
    tz="America/New_York",
    interval=DAY,
    anchor=ANNIVERSARY,
    start=datetime(2025, 11, 2, 5, 30, tzinfo=UTC),
    asked=[("near", 0, -1_800)],
)
def test_a_cycle_that_remembers_answers_as_one_computed_from_scratch(
    tz: str, interval: Interval, anchor: BillingAnchor, start: datetime, asked: list[tuple[Any, ...]]
) -> None:
    # One cycle asked many questions in any order (what it remembers is reused) against a new
    # cycle per question and a boundary computed here from the reference wall time.
    shared = cycle(start, interval, anchor, tz)
    for kind, value, *more in asked:
        fresh = cycle(start, interval, anchor, tz)
        if kind == "boundary":
            assert shared.boundary(value) == fresh.boundary(value) == _boundary_from_scratch(fresh, value)
        elif kind == "period":
            expected = Period(_boundary_from_scratch(fresh, value), _boundary_from_scratch(fresh, value + 1))
            assert shared.period(value) == fresh.period(value) == expected
        else:
            if kind == "index":
                moments_asked = [start + timedelta(seconds=value)]
            else:
                near = _boundary_from_scratch(fresh, value) + timedelta(seconds=more[0])
                moments_asked = [near, near + timedelta(hours=1)]
            for moment in moments_asked:
                index = shared.index_of(moment)
                assert index == cycle(start, interval, anchor, tz).index_of(moment)
                assert _boundary_from_scratch(fresh, index) <= moment < _boundary_from_scratch(fresh, index + 1)
                assert shared.period_containing(moment) == fresh.period(index)
