"""Billing intervals and half-open periods — the time vocabulary prices and subscriptions share.

An `Interval` is a count of calendar units (`month × 1`, `year × 1`, `week × 2`). A `Period` is a
half-open span `[start, end)` of aware UTC datetimes: a moment belongs to exactly one of two
adjacent periods, and a zero-length period (start == end) contains nothing.

Calendar arithmetic on intervals (month-end anchors, time zones) belongs with the subscription
timeline, which is the only place that turns an interval into concrete periods.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tally.core.frozen import quick_init
from tally.core.rejections import InvariantViolation, Rejected, require

INTERVAL_COUNT_MAX = 100


class IntervalUnit(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


@quick_init
@dataclass(frozen=True, slots=True)
class Interval:
    """`count` × `unit`, e.g. every 3 months. Validated on construction."""

    unit: IntervalUnit
    count: int = 1

    def __post_init__(self) -> None:
        if type(self.count) is not int or not 1 <= self.count <= INTERVAL_COUNT_MAX:
            raise Rejected.because(
                "interval_count_out_of_range",
                f"an interval counts 1 to {INTERVAL_COUNT_MAX} units",
                "interval_count",
            )

    @classmethod
    def parse(cls, unit: str, count: int = 1) -> Interval:
        try:
            interval_unit = IntervalUnit(unit)
        except ValueError:
            raise Rejected.because(
                "interval_unit_unknown",
                f"interval must be one of {', '.join(u.value for u in IntervalUnit)}",
                "interval",
            ) from None
        return cls(interval_unit, count)

    @property
    def months(self) -> int | None:
        """The interval in whole months (quarter = 3, year = 12); None for days and weeks."""
        match self.unit:
            case IntervalUnit.MONTH:
                return self.count
            case IntervalUnit.QUARTER:
                return 3 * self.count
            case IntervalUnit.YEAR:
                return 12 * self.count
            case IntervalUnit.DAY | IntervalUnit.WEEK:
                return None

    @property
    def days(self) -> int | None:
        """The interval in whole days (week = 7); None for month-based units."""
        match self.unit:
            case IntervalUnit.DAY:
                return self.count
            case IntervalUnit.WEEK:
                return 7 * self.count
            case IntervalUnit.MONTH | IntervalUnit.QUARTER | IntervalUnit.YEAR:
                return None


@quick_init
@dataclass(frozen=True, slots=True)
class Period:
    """The half-open span `[start, end)`; both ends aware datetimes."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        require(self.start.tzinfo is not None and self.end.tzinfo is not None, "period ends must be aware")
        # Not `require(…, f"…")`: periods are made by the thousand, and the message would be
        # formatted for every one of them.
        if not self.start <= self.end:
            raise InvariantViolation(f"period ends before it starts: {self.start} > {self.end}")

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def overlap(self, other: Period) -> Period | None:
        """The common part of two periods, or None when they share no moment."""
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Period(start, end) if start < end else None
