"""Usage queries: what is asked (`UsageQuery`), how the window is cut (`buckets`), what comes back.

A query names one customer and one meter version, a half-open window `[start, end)`, a granularity
(`hour`, `day`, `month` or `total`) and the group_by keys to split by (a subset of the meter's).
Buckets are aligned to UTC boundaries and clipped to the window, so a window that starts at 10:30
has a first hourly bucket `[10:30, 11:00)`.

The answer has one row per (group, bucket): every bucket of the window for every group that has
data in it (for a query without group_by, the single empty group always appears), values exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from tally.core.frozen import quick_init
from tally.core.metering.meters import MeterVersion
from tally.core.rejections import Rejected, require

HOUR = timedelta(hours=1)
CUSTOMER_LENGTH_MAX = 255
# Hourly buckets over a leap year: the finest split a query may ask for over its longest window.
BUCKETS_MAX = 366 * 24
# Rows of one answer (groups × buckets).
ROWS_MAX = 100_000
# Customer time zones arrive later: buckets are UTC, and the query already carries the zone.
SUPPORTED_TIMEZONES = frozenset({"UTC"})


class Granularity(StrEnum):
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"
    TOTAL = "total"


GroupValues = tuple[str | None, ...]


@quick_init
@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    end: datetime


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class UsageQuery:
    """One customer's usage of one meter version over `[start, end)`. Validates itself."""

    customer: str
    meter: MeterVersion
    start: datetime
    end: datetime
    granularity: Granularity = Granularity.TOTAL
    group_by: tuple[str, ...] = ()
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if not 1 <= len(self.customer) <= CUSTOMER_LENGTH_MAX:
            raise Rejected.because("customer_invalid", f"customer is 1 to {CUSTOMER_LENGTH_MAX} characters", "customer")
        for name, value in (("from", self.start), ("to", self.end)):
            if value.tzinfo is None or value.utcoffset() is None:
                raise Rejected.because("datetime_must_have_timezone", f"{name} needs a UTC offset", name)
        if self.start >= self.end:
            raise Rejected.because("time_range_inverted", "`from` must be before `to` (the window is [from, to))", "to")
        if self.timezone not in SUPPORTED_TIMEZONES:
            raise Rejected.because(
                "timezone_not_supported", "buckets are in UTC for now; customer time zones come later", "timezone"
            )
        meter_keys = self.meter.definition.group_by
        for index, key in enumerate(self.group_by):
            if key not in meter_keys:
                raise Rejected.because(
                    "group_by_not_in_meter",
                    f"{key!r} is not a group_by key of meter {self.meter.code} "
                    f"(it has: {', '.join(meter_keys) or 'none'})",
                    f"group_by[{index}]",
                )
        if len(set(self.group_by)) != len(self.group_by):
            raise Rejected.because("group_by_keys_must_be_distinct", "a group_by key appears twice", "group_by")
        count = bucket_count(self.start, self.end, self.granularity)
        if count > BUCKETS_MAX:
            raise Rejected.because(
                "usage_buckets_exceed_limit",
                f"this window has {count} {self.granularity} buckets; the limit is BUCKETS_MAX = {BUCKETS_MAX} "
                "(e.g. hourly over at most 366 days): use a coarser granularity or a shorter window",
                "granularity",
            )

    @property
    def start_utc(self) -> datetime:
        return self.start.astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        return self.end.astimezone(UTC)

    def group_positions(self) -> tuple[int, ...]:
        """Where each requested group_by key sits among the meter's keys."""
        keys = self.meter.definition.group_by
        return tuple(keys.index(key) for key in self.group_by)


@quick_init
@dataclass(frozen=True, slots=True)
class UsageRow:
    """One bucket of one group. `value` is None only for max/min/latest with no value in the bucket."""

    bucket: Bucket
    group: GroupValues
    value: Decimal | None
    event_count: int
    skipped_events: int


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class UsageResult:
    query: UsageQuery
    rows: tuple[UsageRow, ...]
    # Matching events excluded because their value is missing or not numeric (see the README).
    skipped_events: int
    # How the answer was computed: "rollups" (+ raw edges and tail) or "raw" (raw events only).
    source: str = "rollups"

    def group_dict(self, row: UsageRow) -> dict[str, str | None]:
        return dict(zip(self.query.group_by, row.group, strict=True))


def quantity_text(value: Decimal) -> str:
    """A quantity for the wire: plain decimal notation, exact, without trailing fractional zeros."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


# ----- time ----------------------------------------------------------------------------------------


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floored = floor_hour(moment)
    return floored if floored == moment else floored + HOUR


def bucket_floor(moment: datetime, granularity: Granularity) -> datetime:
    """The start of the UTC bucket holding `moment` (for `total`: the moment itself)."""
    moment = moment.astimezone(UTC)
    match granularity:
        case Granularity.HOUR:
            return floor_hour(moment)
        case Granularity.DAY:
            return moment.replace(hour=0, minute=0, second=0, microsecond=0)
        case Granularity.MONTH:
            return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        case Granularity.TOTAL:
            return moment


def _next_boundary(boundary: datetime, granularity: Granularity) -> datetime:
    match granularity:
        case Granularity.HOUR:
            return boundary + HOUR
        case Granularity.DAY:
            return boundary + timedelta(days=1)
        case Granularity.MONTH:
            if boundary.month == 12:
                return boundary.replace(year=boundary.year + 1, month=1)
            return boundary.replace(month=boundary.month + 1)
        case Granularity.TOTAL:  # pragma: no cover - total has no inner boundaries
            raise AssertionError("total has a single bucket")


def bucket_count(start: datetime, end: datetime, granularity: Granularity) -> int:
    """How many buckets `[start, end)` has, without making them (so a huge window costs nothing)."""
    if start >= end:
        return 0
    first, last = bucket_floor(start, granularity), bucket_floor(end - timedelta(microseconds=1), granularity)
    match granularity:
        case Granularity.TOTAL:
            return 1
        case Granularity.HOUR:
            return (last - first) // HOUR + 1
        case Granularity.DAY:
            return (last - first).days + 1
        case Granularity.MONTH:
            return (last.year - first.year) * 12 + last.month - first.month + 1


def buckets(start: datetime, end: datetime, granularity: Granularity) -> tuple[Bucket, ...]:
    """The UTC buckets of `[start, end)`, clipped to it, in order."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    require(start < end, "a window is non-empty")
    require(bucket_count(start, end, granularity) <= BUCKETS_MAX, "bucket limit is checked by UsageQuery")
    if granularity is Granularity.TOTAL:
        return (Bucket(start, end),)
    result = []
    boundary = bucket_floor(start, granularity)
    while boundary < end:
        following = _next_boundary(boundary, granularity)
        result.append(Bucket(max(boundary, start), min(following, end)))
        boundary = following
    return tuple(result)


def bucket_index(buckets_: tuple[Bucket, ...], granularity: Granularity) -> Mapping[datetime, int]:
    """From a bucket's aligned floor (what SQL's date_trunc gives) to its position."""
    return {bucket_floor(bucket.start, granularity): index for index, bucket in enumerate(buckets_)}


# ----- the events behind a usage figure ------------------------------------------------------------

# Events of one page of a listing (as for raw events).
MATCHED_EVENTS_LIMIT_MAX = 1000
# Windows of one listing (as many as one usage reading may have).
MATCHED_EVENTS_WINDOWS_MAX = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchedEventsQuery:
    """The effective events one meter version counts for one customer inside `windows`, in one
    series `group` (the event's values of *all* the meter's group_by keys, in their order; () for
    a meter without group_by): the events a usage answer over those windows is made of.

    Only counted events: an event whose value is missing or not numeric (a skipped event) adds
    nothing, so it is not listed. Ordered by (timestamp, event id), one page of at most `limit`
    after the keyset cursor `after` (the last listed event's timestamp and id). Validates itself.
    """

    customer: str
    meter: MeterVersion
    windows: tuple[tuple[datetime, datetime], ...]
    group: GroupValues
    after: tuple[datetime, str] | None = None
    limit: int = 100

    def __post_init__(self) -> None:
        if not 1 <= len(self.customer) <= CUSTOMER_LENGTH_MAX:
            raise Rejected.because("customer_invalid", f"customer is 1 to {CUSTOMER_LENGTH_MAX} characters", "customer")
        if not 1 <= len(self.windows) <= MATCHED_EVENTS_WINDOWS_MAX:
            raise Rejected.because(
                "usage_windows_exceed_limit", f"1 to {MATCHED_EVENTS_WINDOWS_MAX} windows", "windows"
            )
        previous_end: datetime | None = None
        for start, end in self.windows:
            if start.tzinfo is None or end.tzinfo is None:
                raise Rejected.because("datetime_must_have_timezone", "windows need a UTC offset", "windows")
            if start >= end:
                raise Rejected.because("time_range_inverted", "a window [start, end) is non-empty", "windows")
            if previous_end is not None and start < previous_end:
                # Overlapping windows would list an event twice (and a usage answer would count it twice).
                raise Rejected.because(
                    "usage_windows_must_be_ordered", "windows are in order and do not overlap", "windows"
                )
            previous_end = end
        if len(self.group) != len(self.meter.definition.group_by):
            raise Rejected.because(
                "group_must_match_meter",
                f"a group has one value per group_by key of meter {self.meter.code} "
                f"({len(self.meter.definition.group_by)})",
                "group",
            )
        if self.after is not None and self.after[0].tzinfo is None:
            raise Rejected.because("datetime_must_have_timezone", "the cursor's timestamp needs a UTC offset", "after")
        if isinstance(self.limit, bool) or not 1 <= self.limit <= MATCHED_EVENTS_LIMIT_MAX:
            raise Rejected.because("limit_out_of_range", f"limit must be 1 to {MATCHED_EVENTS_LIMIT_MAX}", "limit")


@dataclass(frozen=True, slots=True)
class MatchedEvent:
    """One event a usage figure is made of, with what it contributes.

    - `properties_json`: its effective properties (the latest amendment's, if any) as JSON text with
      exact numbers: what the meter saw.
    - `value`: count: 1; sum, max, min, latest: the value property as a number; time_weighted_sum:
      the level it sets (the figure is the integral of the levels over time, not their sum);
      unique_count: None.
    - `distinct_value_json`: unique_count only: the value property as JSON text (a string or a
      number; `"1"` and `1` are different values).
    """

    event_id: str
    timestamp: datetime
    properties_json: str
    value: Decimal | None
    distinct_value_json: str | None = None


@dataclass(frozen=True, slots=True)
class MatchedEventsPage:
    events: tuple[MatchedEvent, ...]
    has_more: bool
