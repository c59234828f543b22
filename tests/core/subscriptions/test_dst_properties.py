"""Day-basis proration across clock changes (Hypothesis), checked against a from-scratch model.

Subscriptions in zones that change their clocks (New York, Berlin, Lord Howe's half hour, Santiago's
midnight change) prorate by whole billing days, and every change lands within three hours of a
clock change, or within an hour of a billing day's start on a day clocks change: in a repeated
hour (either pass), just after a gap, or on either side. Over every closed period, the fee events
of each fixed price add up exactly to what `reference.expected_fee` computes by listing billing-day
starts itself; the periods of each price tile its time on the subscription, and each boundary is a
billing-day start.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

from hypothesis import example, given
from hypothesis import strategies as st

from tally.core.periods import Period
from tally.core.subscriptions import (
    AnchorKind,
    BillingAnchor,
    Canceled,
    CancelScheduled,
    CancelUnscheduled,
    ItemKind,
    ItemsChanged,
    Paused,
    ProrationBasis,
    QuantityChanged,
    Resumed,
    Started,
    Timeline,
    TimelineEntry,
    billing_events,
)
from tests.core.subscriptions.builders import DAY, MONTH, QUARTER, WEEK, exact_amount, fee, usage
from tests.core.subscriptions.reference import DayGrid, clock_changes, expected_fee, fact_moments, wall_instant

DST_ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Santiago"]
CLOCK_CHANGES = {tz: clock_changes(tz, 2025) + clock_changes(tz, 2026) for tz in DST_ZONES}
INTERVALS = [DAY, WEEK, MONTH, QUARTER]
ANCHORS = [
    BillingAnchor(AnchorKind.ANNIVERSARY),
    BillingAnchor(AnchorKind.CALENDAR),
    BillingAnchor(AnchorKind.DAY_OF_MONTH, 31),
]
NEAR_SECONDS = 3 * 3600
AFTER_LAST_CHANGE = timedelta(days=200)


@st.composite
def timelines_across_clock_changes(draw: st.DrawFn) -> Timeline:
    """A day-basis subscription started before its zone's clock changes, every later fact within
    three hours of one of them (or a day after, so a fact also lands on a shifted billing day)."""
    tz = draw(st.sampled_from(DST_ZONES))
    changes = CLOCK_CHANGES[tz]

    first = draw(st.integers(0, len(changes) - 2))

    def offset() -> timedelta:
        # Half the draws within the hour around the change: the repeated hour, or just past a gap.
        return timedelta(seconds=draw(st.integers(-NEAR_SECONDS, NEAR_SECONDS) | st.integers(-3600, 3600)))

    def near() -> datetime:
        return draw(st.sampled_from(changes[first:])) + timedelta(days=draw(st.integers(0, 1))) + offset()

    # The start's wall time of day is near a clock change's (in the repeated hour itself, either
    # pass, when it starts on the day clocks change), so anniversary billing days begin in the
    # repeated hour or the gap on the days clocks change.
    start = changes[first] - timedelta(days=draw(st.integers(0, 60))) + offset()
    interval = draw(st.sampled_from(INTERVALS))
    seat = fee("seat", draw(st.sampled_from(["30", "29.99", "0.07"])), interval, draw(st.integers(0, 4)))
    addon = fee("addon", "7", draw(st.sampled_from(INTERVALS)))
    tokens = usage("tokens", draw(st.sampled_from(INTERVALS)))
    trial_end = max(near(), start + timedelta(seconds=1)) if draw(st.booleans()) else None
    entries: list[TimelineEntry] = [
        Started(
            effective_at=start,
            items=(seat, tokens),
            timezone=tz,
            anchor=draw(st.sampled_from(ANCHORS)),
            trial_end=trial_end,
            proration_basis=ProrationBasis.DAY,
        )
    ]
    zone_info = ZoneInfo(tz)
    time_of_day = start.astimezone(zone_info).time()

    def near_a_day_start() -> datetime:
        # Within an hour of the start's wall time on a day clocks change: where a billing day
        # starts late (after a gap) or twice-read (a repeated hour).
        day = draw(st.sampled_from(changes[first:])).astimezone(zone_info).date()
        wall = datetime.combine(day, time_of_day)
        return wall_instant(zone_info, wall, second_pass=False) + timedelta(seconds=draw(st.integers(-3600, 3600)))

    def a_moment() -> datetime:
        return near_a_day_start() if draw(st.booleans()) else near()

    moments = sorted({at for _ in range(draw(st.integers(1, 7))) if (at := a_moment()) > start})
    quantity, with_addon, paused, cancel_at = seat.quantity, False, False, None
    for moment in moments:
        if cancel_at is not None and cancel_at <= moment:
            break
        options = ["quantity", "items", "resume" if paused else "pause", "unschedule" if cancel_at else "schedule"]
        match draw(st.sampled_from([*options, "cancel"] if draw(st.integers(0, 7)) == 0 else options)):
            case "quantity":
                quantity = (quantity + draw(st.integers(1, 4))) % 5
                entries.append(QuantityChanged(effective_at=moment, price_id="seat", quantity=quantity))
            case "items":
                with_addon = not with_addon
                items = (fee("seat", str(seat.unit_amount), interval, quantity), tokens)
                entries.append(ItemsChanged(effective_at=moment, items=(*items, addon) if with_addon else items))
            case "pause":
                paused = True
                entries.append(Paused(effective_at=moment))
            case "resume":
                paused = False
                entries.append(Resumed(effective_at=moment))
            case "schedule":
                cancel_at = max(near(), moment + timedelta(seconds=1))
                entries.append(CancelScheduled(effective_at=moment, ends_at=cancel_at))
            case "unschedule":
                cancel_at = None
                entries.append(CancelUnscheduled(effective_at=moment))
            case _:
                entries.append(Canceled(effective_at=moment))
                break
    return Timeline("sub_dst", tuple(entries))


def _seat_change(start: datetime, change: datetime) -> Timeline:
    """New York, anniversary, by days: one seat from `start`, two from `change`."""
    started = Started(
        effective_at=start, items=(fee("seat", "30"),), timezone="America/New_York", proration_basis=ProrationBasis.DAY
    )
    return Timeline("sub_dst", (started, QuantityChanged(effective_at=change, price_id="seat", quantity=2)))


# Billing days start at 01:30. On 2025-11-02 that is the first 01:30 (05:30 UTC); 01:10 in the
# second pass (06:10 UTC) reads earlier on the wall but belongs to the day that began at 05:30.
@example(_seat_change(datetime(2025, 10, 20, 5, 30, tzinfo=UTC), datetime(2025, 11, 2, 6, 10, tzinfo=UTC)))
# Billing days start at 02:30, which 2025-03-09 skips: that day starts at 03:30 EDT (07:30 UTC), so
# 03:10 EDT (07:10 UTC) still belongs to March 8.
@example(_seat_change(datetime(2025, 3, 1, 7, 30, tzinfo=UTC), datetime(2025, 3, 9, 7, 10, tzinfo=UTC)))
@given(timelines_across_clock_changes())
def test_day_basis_fees_across_clock_changes_match_a_model_built_from_scratch(timeline: Timeline) -> None:
    history = timeline.history
    through = max(fact_moments(timeline)) + AFTER_LAST_CHANGE
    result = billing_events(timeline, through=through)
    grid = DayGrid.of(timeline)
    billed: dict[tuple[str, Period], Fraction] = defaultdict(Fraction)
    for event in result.events:
        if event.amount is not None:
            billed[(event.price_id, event.period)] += exact_amount(event)
    for price in result.periods:
        # Periods tile: in order, each non-empty, consecutive ones touching or leaving a gap only
        # where the price was off the subscription; each boundary is a billing-day start.
        for before, after in itertools.pairwise(price.periods):
            assert before.start < before.end <= after.start
        for period in price.periods:
            assert grid.starts_between(period.start, period.end) > 0, period
            for boundary in (period.start, period.end):
                assert grid.day_start(boundary.astimezone(grid.zone_info).date()) == boundary, boundary
        if price.kind is not ItemKind.FIXED:
            continue
        for period in price.periods:
            if period.end <= through:
                expected = expected_fee(timeline, price.price_id, period, in_arrears=False, grid=grid)
                assert billed.get((price.price_id, period), Fraction(0)) == expected, (price.price_id, period)
    # The seat price is held from the start to the end: its periods leave no gap at all.
    seat = next(price for price in result.periods if price.price_id == "seat")
    assert seat.periods[0].contains(history.start)
    assert all(before.end == after.start for before, after in itertools.pairwise(seat.periods))
    if history.ended_at is not None and history.ended_at <= through:
        assert seat.periods[-1].start < history.ended_at <= seat.periods[-1].end
    else:
        assert seat.periods[-1].contains(through)
