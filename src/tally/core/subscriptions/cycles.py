"""Billing cycles: the exact period boundaries of one interval from one anchor, in one time zone.

A `BillingCycle` is an endless grid of boundaries `…, b(-1), b(0), b(1), …` in the customer's
wall-clock time. Boundary `k` is the reference wall time plus `k` intervals, computed from the
reference every time — never from the previous boundary — so a month-end anchor never drifts: an
anchor on the 31st gives Jan 31 → Feb 28 (29 in leap years) → Mar 31 → Apr 30. Each wall time is
then placed in the customer's zone and converted to UTC, so a DST change moves the UTC offset of the
boundary, not its wall time. Periods are half-open `[b(k), b(k+1))`.

A wall time that does not exist (inside a spring-forward gap) is read with the offset in force
before the gap, which lands it as many minutes after the gap as it was into it (02:30 on a day
clocks jump from 02:00 to 03:00 becomes 03:30). An ambiguous wall time (fall-back) means the
occurrence the reference itself has: its first, unless the reference is a moment in the second
pass of a repeated hour (an anniversary started at the second 01:30). Boundary 0 of an anniversary
is therefore the start itself, to the microsecond, whichever pass of the hour it fell in.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tally.core.periods import Interval, IntervalUnit, Period
from tally.core.rejections import InvariantViolation, Rejected, require

# Most periods one call may generate for one price: daily billing for over 13 years.
PERIODS_MAX = 5_000
# Times the core accepts. Far-future boundaries (interval up to 100 years) must still fit a datetime.
TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(2400, 1, 1, tzinfo=UTC)
TIMEZONE_LENGTH_MAX = 64
# Answers one cycle remembers of each kind (boundaries, periods, indexes of moments); past this it
# forgets them all and starts again, which costs time, never exactness.
REMEMBERED_MAX = 4 * PERIODS_MAX


class AnchorKind(StrEnum):
    # Start of the interval's calendar unit: midnight of the day, Monday of the ISO week, the 1st of
    # the month, the first day of the calendar quarter, January 1st.
    CALENDAR = "calendar"
    # The subscription's start, to the second, in the customer's wall time.
    ANNIVERSARY = "anniversary"
    # Midnight of an explicit day of the month (clamped to short months); the first full period
    # begins on the first such day on or after the start's date.
    DAY_OF_MONTH = "day_of_month"


class ProrationBasis(StrEnum):
    # Elapsed seconds of real time: a period with a DST change is an hour shorter or longer.
    SECOND = "second"
    # Whole billing days in the customer's wall time: the day of a change belongs to the new state.
    DAY = "day"


@dataclass(frozen=True, slots=True)
class BillingAnchor:
    """How a subscription's periods are aligned. `day_of_month` only with `DAY_OF_MONTH`."""

    kind: AnchorKind = AnchorKind.ANNIVERSARY
    day_of_month: int | None = None

    def __post_init__(self) -> None:
        if self.kind is AnchorKind.DAY_OF_MONTH:
            if type(self.day_of_month) is not int or not 1 <= self.day_of_month <= 31:
                raise Rejected.because(
                    "anchor_day_of_month_out_of_range", "an anchor day of month is 1 to 31", "anchor.day_of_month"
                )
        elif self.day_of_month is not None:
            raise Rejected.because(
                "anchor_day_of_month_not_allowed",
                f"a {self.kind} anchor takes no day of month",
                "anchor.day_of_month",
            )


def zone(key: str, field: str = "timezone") -> ZoneInfo:
    """The IANA time zone `key`, or a rejection `timezone_unknown`."""
    if not isinstance(key, str) or not 1 <= len(key) <= TIMEZONE_LENGTH_MAX or key.startswith(("/", ".")):
        raise Rejected.because("timezone_unknown", "a time zone is an IANA name such as Europe/Berlin", field)
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        raise Rejected.because("timezone_unknown", f"{key!r} is not an IANA time zone", field) from None


def check_moment(moment: datetime, field: str) -> None:
    """Times entering the core are aware and within [TIME_MIN, TIME_MAX)."""
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise Rejected.because("datetime_must_have_timezone", f"{field} needs a UTC offset", field)
    if not TIME_MIN <= moment < TIME_MAX:
        raise Rejected.because(
            "datetime_out_of_range", f"{field} must lie in [{TIME_MIN.year}, {TIME_MAX.year})", field
        )


@dataclass(frozen=True, slots=True)
class BillingCycle:
    """Boundaries every `interval` from the wall time `reference` in `timezone`.

    `day_of_month` is the day month-based boundaries aim for; a month without it gets its last day.
    """

    interval: Interval
    # Naive: a wall time in `timezone`. Its `fold` says which pass of a repeated hour it means.
    reference: datetime
    day_of_month: int
    timezone: ZoneInfo
    # Boundaries and periods computed so far, by index, and the period index of moments asked
    # about: a cycle is immutable, so each is computed once (up to `REMEMBERED_MAX` of each).
    _boundaries: dict[int, datetime] = field(default_factory=dict, init=False, repr=False, compare=False)
    _periods: dict[int, Period] = field(default_factory=dict, init=False, repr=False, compare=False)
    _indexes: dict[datetime, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        require(self.reference.tzinfo is None, "a cycle reference is a wall time (naive)")
        require(1 <= self.day_of_month <= 31, "cycle day of month is 1 to 31")

    @classmethod
    def for_subscription(
        cls, *, anchor: BillingAnchor, interval: Interval, start: datetime, timezone: ZoneInfo
    ) -> BillingCycle:
        """The cycle of one price of a subscription that starts at `start`."""
        local = start.astimezone(timezone).replace(tzinfo=None)
        midnight = datetime.combine(local.date(), time())
        match anchor.kind:
            case AnchorKind.ANNIVERSARY:
                return cls(interval, local, local.day, timezone)
            case AnchorKind.CALENDAR:
                return cls(interval, _calendar_unit_start(midnight, interval.unit), 1, timezone)
            case AnchorKind.DAY_OF_MONTH:
                require(anchor.day_of_month is not None, "day-of-month anchors carry a day")
                day = anchor.day_of_month or 1
                first = _on_day(local.year, local.month, day)
                if first < local.date():
                    year, month = divmod(local.year * 12 + local.month, 12)
                    first = _on_day(year, month + 1, day)
                return cls(interval, datetime.combine(first, time()), day, timezone)

    def boundary(self, index: int) -> datetime:
        """Boundary number `index` in UTC (boundary 0 is the reference)."""
        found = self._boundaries.get(index)
        if found is None:
            if len(self._boundaries) >= REMEMBERED_MAX:
                self._boundaries.clear()
            found = self._boundaries[index] = self._compute_boundary(index)
        return found

    def _compute_boundary(self, index: int) -> datetime:
        """Boundary `index` from the reference, without what was remembered."""
        months = self.interval.months
        if months is not None:
            year, month = divmod(self.reference.year * 12 + self.reference.month - 1 + index * months, 12)
            wall = datetime.combine(_on_day(year, month + 1, self.day_of_month), self.reference.time())
        else:
            days = self.interval.days
            require(days is not None, "an interval is month-based or day-based")
            wall = self.reference + timedelta(days=index * (days or 1))
        return self._instant(wall)

    def index_of(self, moment: datetime) -> int:
        """The number of the period holding `moment`: boundary(k) <= moment < boundary(k + 1)."""
        found = self._indexes.get(moment)
        if found is None:
            if len(self._indexes) >= REMEMBERED_MAX:
                self._indexes.clear()
            found = self._indexes[moment] = self._compute_index_of(moment)
        return found

    def _compute_index_of(self, moment: datetime) -> int:
        local = moment.astimezone(self.timezone).replace(tzinfo=None)
        months = self.interval.months
        if months is not None:
            elapsed = (local.year - self.reference.year) * 12 + local.month - self.reference.month
            index = elapsed // months
        else:
            index = (local - self.reference).days // (self.interval.days or 1)
        # The estimate is off by at most one either way (time of day, DST); more steps is a bug.
        for _ in range(4):
            if self.boundary(index) > moment:
                index -= 1
            elif self.boundary(index + 1) <= moment:
                index += 1
            else:
                return index
        raise InvariantViolation(f"cycle index did not settle for {moment}")

    def period(self, index: int) -> Period:
        found = self._periods.get(index)
        if found is None:
            start, end = self.boundary(index), self.boundary(index + 1)
            if not start < end:
                raise InvariantViolation(f"cycle boundaries must increase: {start} >= {end}")
            if len(self._periods) >= REMEMBERED_MAX:
                self._periods.clear()
            found = self._periods[index] = Period(start, end)
        return found

    def period_containing(self, moment: datetime) -> Period:
        return self.period(self.index_of(moment))

    def periods(self, start: datetime, end: datetime, *, limit: int = PERIODS_MAX) -> tuple[Period, ...]:
        """The whole periods that overlap `[start, end)`, in order; refused past `limit` periods."""
        if start >= end:
            return ()
        first, last = self.index_of(start), self.index_of(end - timedelta(microseconds=1))
        if last - first + 1 > limit:
            raise Rejected.because(
                "billing_periods_exceed_limit",
                f"[{start.isoformat()}, {end.isoformat()}) spans {last - first + 1} periods of "
                f"{self.interval.count} {self.interval.unit}; the limit is PERIODS_MAX = {limit}",
                "through",
            )
        return tuple(self.period(index) for index in range(first, last + 1))

    def billing_day(self, moment: datetime) -> date:
        """The billing day holding `moment`: days start at the reference's wall time of day.

        Settled on the UTC instants of day starts (not on wall times, which repeat an hour when
        clocks fall back), so billing days never run backwards.
        """
        local = moment.astimezone(self.timezone).replace(tzinfo=None)
        offset = self.reference - datetime.combine(self.reference.date(), time())
        day = (local - offset).date()
        for _ in range(4):
            if self.day_start(day) > moment:
                day -= timedelta(days=1)
            elif self.day_start(day + timedelta(days=1)) <= moment:
                day += timedelta(days=1)
            else:
                return day
        raise InvariantViolation(f"billing day did not settle for {moment}")

    def day_start(self, day: date) -> datetime:
        """When billing day `day` starts, in UTC: the reference's wall time of day on that date."""
        return self._instant(datetime.combine(day, self.reference.time()))

    def _instant(self, wall: datetime) -> datetime:
        """The UTC instant of the wall time `wall` in the cycle's zone.

        A wall time that occurs twice takes the reference's pass of the hour; one that does not
        occur (a gap) is read with the offset before the gap, whatever the reference's fold: `fold=1`
        there would place it before the gap, an hour earlier than the wall time says.
        """
        first = wall.replace(tzinfo=self.timezone, fold=0)
        second = wall.replace(tzinfo=self.timezone, fold=1)
        first_offset, second_offset = first.utcoffset(), second.utcoffset()
        require(first_offset is not None and second_offset is not None, "a zone gives every wall time an offset")
        # In a repeated hour the first pass has the larger offset (clocks were ahead); in a gap, the
        # smaller one. Equal offsets: an ordinary wall time.
        repeated = first_offset is not None and second_offset is not None and first_offset > second_offset
        chosen = second if repeated and self.reference.fold == 1 else first
        return chosen.astimezone(UTC)

    def position(self, period: Period, moment: datetime, basis: ProrationBasis) -> int:
        """Whole units (seconds or billing days) from the start of `period` to `moment`.

        Positions are floors on one grid, so the units of adjacent segments always add up to the
        units of the period, whatever fraction of a second or day a change falls on.
        """
        match basis:
            case ProrationBasis.SECOND:
                elapsed = moment - period.start
                return elapsed.days * 86_400 + elapsed.seconds
            case ProrationBasis.DAY:
                return (self.billing_day(moment) - self.billing_day(period.start)).days


def _on_day(year: int, month: int, day: int) -> date:
    """`day` of the month, or its last day when the month is shorter."""
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _calendar_unit_start(midnight: datetime, unit: IntervalUnit) -> datetime:
    match unit:
        case IntervalUnit.DAY:
            return midnight
        case IntervalUnit.WEEK:
            return midnight - timedelta(days=midnight.weekday())
        case IntervalUnit.MONTH:
            return midnight.replace(day=1)
        case IntervalUnit.QUARTER:
            return midnight.replace(month=(midnight.month - 1) // 3 * 3 + 1, day=1)
        case IntervalUnit.YEAR:
            return midnight.replace(month=1, day=1)
