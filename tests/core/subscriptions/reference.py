"""A from-scratch model of what a subscription should bill, for properties to compare the core with.

It shares no code with `tally.core.subscriptions.cycles`: wall times are placed in a zone by trying
both passes of the hour and keeping those that read back to the same wall time, billing days are
counted by listing their starts, and what each price holds at a moment comes from the timeline's
public `state_at`. Slow and plain on purpose; the core is the fast one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

from tally.core.periods import Period
from tally.core.subscriptions import (
    AnchorKind,
    Canceled,
    CancelScheduled,
    CancelUnscheduled,
    ItemsChanged,
    Paused,
    ProrationBasis,
    QuantityChanged,
    Resumed,
    Started,
    SubscriptionStatus,
    Timeline,
    state_at,
)


def clock_changes(tz: str, year: int) -> list[datetime]:
    """The UTC instants at which `tz` changes its offset during `year`, to the quarter hour."""
    zone_info = ZoneInfo(tz)
    moment, end, step = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC), timedelta(minutes=15)
    found = []
    while moment < end:
        if moment.astimezone(zone_info).utcoffset() != (moment + step).astimezone(zone_info).utcoffset():
            found.append(moment + step)
        moment += step
    return found


def wall_instant(zone_info: ZoneInfo, wall: datetime, second_pass: bool) -> datetime:
    """The UTC instant of the naive `wall` in `zone_info`.

    A wall time that occurs twice is its first pass, or its second when `second_pass`; one that
    never occurs (clocks jumped over it) is read with the offset of three hours earlier, the offset
    in force before the jump.
    """
    passes = sorted(
        {
            candidate
            for fold in (0, 1)
            if (candidate := wall.replace(tzinfo=zone_info, fold=fold).astimezone(UTC))
            .astimezone(zone_info)
            .replace(tzinfo=None)
            == wall
        }
    )
    if not passes:
        offset = (wall - timedelta(hours=3)).replace(tzinfo=zone_info).utcoffset()
        assert offset is not None
        return (wall - offset).replace(tzinfo=UTC)
    return passes[-1] if second_pass else passes[0]


@dataclass(frozen=True, slots=True)
class DayGrid:
    """Billing days of one subscription: each starts at the reference wall time of day."""

    zone_info: ZoneInfo
    time_of_day: time
    second_pass: bool

    @classmethod
    def of(cls, timeline: Timeline) -> DayGrid:
        started = timeline.history.started
        zone_info = ZoneInfo(started.timezone)
        if started.anchor.kind is not AnchorKind.ANNIVERSARY:
            return cls(zone_info, time(), second_pass=False)
        start = started.effective_at.astimezone(UTC)
        wall = start.astimezone(zone_info).replace(tzinfo=None)
        # The start is the second pass of its wall time when the first pass is another instant.
        return cls(zone_info, wall.time(), second_pass=wall_instant(zone_info, wall, False) != start)

    def day_start(self, day: date) -> datetime:
        return wall_instant(self.zone_info, datetime.combine(day, self.time_of_day), self.second_pass)

    def starts_between(self, after: datetime, until: datetime) -> int:
        """How many billing days start in `(after, until]`."""
        first = after.astimezone(self.zone_info).date() - timedelta(days=2)
        last = until.astimezone(self.zone_info).date() + timedelta(days=2)
        count, day = 0, first
        while day <= last:
            if after < self.day_start(day) <= until:
                count += 1
            day += timedelta(days=1)
        return count


def units(grid: DayGrid, basis: ProrationBasis, period: Period, start: datetime, end: datetime) -> int:
    """Whole seconds or billing days of `[start, end)` inside `period` (positions are floors)."""
    match basis:
        case ProrationBasis.SECOND:
            second = timedelta(seconds=1)
            return (end - period.start) // second - (start - period.start) // second
        case ProrationBasis.DAY:
            return grid.starts_between(start, end)


def fact_moments(timeline: Timeline) -> set[datetime]:
    """Every moment a fact takes effect, including trial ends and scheduled ends."""
    found: set[datetime] = set()
    for entry in timeline.entries:
        found.add(entry.effective_at)
        if isinstance(entry, CancelScheduled):
            found.add(entry.ends_at)
        if isinstance(entry, Started) and entry.trial_end is not None:
            found.add(entry.trial_end)
    return found


def prorating_moments(timeline: Timeline) -> set[datetime]:
    """Moments at which fees in advance are prorated, as the README states it: a start, a trial end,
    a pause, a resume, scheduling or undoing a cancel always; a change of items or quantity and a
    cancel (immediate, or the scheduled end reached) when their `prorate` says so."""
    ended_at = timeline.history.ended_at
    found: set[datetime] = set()
    for entry in timeline.entries:
        if isinstance(entry, Started):
            found.add(entry.effective_at)
            if entry.trial_end is not None:
                found.add(entry.trial_end)
        elif isinstance(entry, Paused | Resumed | CancelScheduled | CancelUnscheduled) or (
            isinstance(entry, ItemsChanged | QuantityChanged | Canceled) and entry.prorate
        ):
            found.add(entry.effective_at)
        if isinstance(entry, CancelScheduled) and entry.prorate and entry.ends_at == ended_at:
            found.add(entry.ends_at)
    return found


# What one price is at a moment: ("absent",), ("trial",), ("paused",) or ("active", quantity).
Held = tuple[str] | tuple[str, int]


def held(timeline: Timeline, price_id: str, moment: datetime) -> Held:
    state = state_at(timeline, moment)
    quantities = [item.quantity for item in state.items if item.price_id == price_id]
    if state.status in (SubscriptionStatus.NOT_STARTED, SubscriptionStatus.ENDED) or not quantities:
        return ("absent",)
    if state.status is SubscriptionStatus.PAUSED:
        return ("paused",)
    if state.trial_end is not None and moment < state.trial_end:
        return ("trial",)
    return ("active", quantities[0] or 0)


def quantity_of(value: Held) -> int:
    return value[1] if len(value) == 2 else 0


def expected_fee(
    timeline: Timeline, price_id: str, period: Period, *, in_arrears: bool, grid: DayGrid | None = None
) -> Fraction:
    """What a fixed fee should bill over a closed `period`, exactly.

    In arrears: the time it was held, at the quantity held. In advance: the quantity billed for
    the rest of the period, which starts as the quantity held at the period's start and follows
    what the price holds only at moments that prorate (without proration the fee billed stands
    until the period ends).
    """
    history = timeline.history
    price = history.prices[price_id]
    assert price.unit_amount is not None
    basis = history.started.proration_basis
    grid = grid or DayGrid.of(timeline)
    prorating = prorating_moments(timeline)
    cuts = sorted({period.start, period.end} | {m for m in fact_moments(timeline) if period.start < m < period.end})
    total = units(grid, basis, period, period.start, period.end)
    value = held(timeline, price_id, period.start)
    billed = quantity_of(value)
    amount = Fraction(0)
    for index, (start, end) in enumerate(itertools.pairwise(cuts)):
        if index:
            now = held(timeline, price_id, start)
            if now != value and start in prorating:
                billed = quantity_of(now)
            value = now
        quantity = quantity_of(value) if in_arrears else billed
        amount += Fraction(price.unit_amount) * quantity * Fraction(units(grid, basis, period, start, end), total)
    return amount
