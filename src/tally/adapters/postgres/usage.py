"""Usage queries on PostgreSQL: rollups for whole days and hours, raw events for the rest, one snapshot.

A query for `[from, to)` reads, in one snapshot:

- the daily rollups of the whole UTC days inside the window (for day, month and total buckets),
  and the hourly rollups of the other whole hours — except *pending* hours: hours of this customer
  touched by a batch or a correction still in `rollup_queue` (their rollups do not have everything
  yet; a day with a pending hour is read from its other hours);
- the effective raw events of the window's cut edges (`[from, first hour)`, `[last hour, to)`) and
  of the pending hours.

The rollup worker removes a batch from the queue in the transaction that adds it to the rollups, so
in any snapshot each event is counted once: in a rolled-up hour or in a raw hour. An accepted event is
visible as soon as its batch commits. Scanning raw events is bounded by the edges plus the hours the
queue touches — normally the current hour.

A meter version whose rollups are still being backfilled is answered from raw events only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.postgres.connections import psycopg_transaction
from tally.adapters.postgres.meters import READY
from tally.adapters.postgres.rollups import CompiledMeter, compile_meter, matched_events_sql, pending_hours_sql
from tally.core.frozen import quick_init
from tally.core.metering.aggregation import (
    EXACT,
    Cell,
    LevelSegment,
    assemble,
    fold_time_weighted,
    time_weighted_quantity,
)
from tally.core.metering.meters import AggregationKind, TimeWeightedSum
from tally.core.metering.usage import (
    Granularity,
    GroupValues,
    MatchedEvent,
    MatchedEventsPage,
    MatchedEventsQuery,
    UsageQuery,
    UsageResult,
    bucket_floor,
    buckets,
    ceil_hour,
    floor_hour,
)
from tally.core.rejections import InvariantViolation, Rejected

# Earlier than any event: the lower bound of "everything before the window".
BEGINNING = datetime(1, 1, 2, tzinfo=UTC)


@quick_init
@dataclass(frozen=True, slots=True)
class _Plan:
    """Which parts of the timeline come from where."""

    raw_only: bool
    interior_start: datetime  # whole hours [interior_start, interior_end) may come from rollups:
    interior_end: datetime
    days_start: datetime  # the whole days [days_start, days_end) among them from daily rows,
    days_end: datetime
    hours: tuple[tuple[datetime, datetime], ...]  # the rest from hourly rows
    edges: tuple[tuple[datetime, datetime], ...]  # cut hours at the window's ends: raw


def _plan(query: UsageQuery, raw_only: bool) -> _Plan:
    start, end = query.start_utc, query.end_utc
    interior_start, interior_end = ceil_hour(start), floor_hour(end)
    if raw_only or interior_start >= interior_end:
        return _Plan(raw_only, start, start, start, start, (), ((start, end),))
    edges = []
    if start < interior_start:
        edges.append((start, interior_start))
    if interior_end < end:
        edges.append((interior_end, end))
    # Daily rows fit day, month and total buckets; hourly buckets need hours.
    days_start, days_end = _ceil_day(interior_start), _floor_day(interior_end)
    if query.granularity is Granularity.HOUR or days_start >= days_end:
        days_start = days_end = interior_start
    hours = tuple((low, high) for low, high in ((interior_start, days_start), (days_end, interior_end)) if low < high)
    if days_start == days_end:
        hours = ((interior_start, interior_end),)
    return _Plan(False, interior_start, interior_end, days_start, days_end, hours, tuple(edges))


def _floor_day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil_day(moment: datetime) -> datetime:
    floored = _floor_day(moment)
    return floored if floored == moment else floored + timedelta(days=1)


class PostgresEventStore:
    """The event store on tally's PostgreSQL (see `tally.app.event_store.EventStore`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def usage(self, tenant_id: uuid.UUID, query: UsageQuery, *, raw_only: bool = False) -> UsageResult:
        """The usage answer. `raw_only` computes it from raw events alone (a baseline, and a check)."""
        meter = compile_meter(query.meter.version_id, query.meter.definition)
        if isinstance(query.meter.definition.aggregation, TimeWeightedSum):
            with psycopg_transaction(self._engine) as connection:
                # Several statements: one REPEATABLE READ snapshot for all of them.
                connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                plan = _plan(query, raw_only or _state(connection, tenant_id, query) != READY)
                cells = _time_weighted(connection, query, meter, plan, _parameters(tenant_id, query, meter, plan))
            return assemble(query, cells, "raw" if plan.raw_only else "rollups")
        # One statement (one snapshot) that also reads the version's state: one round trip.
        with _autocommit(self._engine) as connection:
            plan = _plan(query, raw_only)
            state, cells = _mergeable(connection, query, meter, _parameters(tenant_id, query, meter, plan))
            if state is None:
                raise Rejected.because("meter_not_found", f"no meter version {query.meter.version_id}", "meter")
            if state != READY and not plan.raw_only:
                # Still backfilling: its rollups are incomplete, so answer from raw events alone.
                plan = _plan(query, True)
                state, cells = _mergeable(connection, query, meter, _parameters(tenant_id, query, meter, plan))
        return assemble(query, cells, "raw" if plan.raw_only else "rollups")

    def matched_events(self, tenant_id: uuid.UUID, query: MatchedEventsQuery) -> MatchedEventsPage:
        """One page of the events a usage answer over `query.windows` is made of (see
        `MatchedEventsQuery`): always from raw events, through the same effective-event and meter SQL
        as the usage answer's raw parts, so the two cannot disagree on which events count."""
        meter = compile_meter(query.meter.version_id, query.meter.definition)
        unique = meter.kind is AggregationKind.UNIQUE_COUNT
        after = query.after
        cursor = "true"
        if after is not None:
            # Keyset on (timestamp, event id), ids by code point: the index range starts at the cursor.
            cursor = (
                'e."timestamp" >= %(after_timestamp)s AND (e."timestamp" > %(after_timestamp)s'
                ' OR e.event_id COLLATE "C" > %(after_id)s)'
            )
        # One index range scan of the customer's events of the type, from the cursor (or the first
        # window's start) to the last window's end. The order is (timestamp, id) and the index has
        # only the timestamp, so unless the planner streams it (incremental sort) a page may read
        # the rest of the line's events to sort them: fine for support's look at a line, not for
        # exporting millions of events (the bounded limit keeps each answer small).
        scope = """events e"""
        where = f"""e.tenant_id = %(tenant_id)s AND e.customer = %(customer)s AND e.type = %(event_type)s
  AND e."timestamp" >= %(first_start)s AND e."timestamp" < %(last_end)s
  AND EXISTS (SELECT 1 FROM unnest(%(window_starts)s::timestamptz[], %(window_ends)s::timestamptz[]) AS w(lo, hi)
              WHERE e."timestamp" >= w.lo AND e."timestamp" < w.hi)
  AND {cursor}"""
        matched = matched_events_sql(meter, scope, where, properties=True)
        distinct = "(x.properties -> %(value_property)s)::text" if unique else "NULL::text"
        statement = f"""
SELECT x."timestamp", x.event_id, x.properties::text, x.value, {distinct}
FROM ({matched}) x
WHERE x.counted AND x.group_values IS NOT DISTINCT FROM %(group)s::text[]
ORDER BY x."timestamp", x.event_id COLLATE "C"
LIMIT %(limit)s"""
        windows = [(start.astimezone(UTC), end.astimezone(UTC)) for start, end in query.windows]
        parameters = {
            **meter.parameters,
            "tenant_id": tenant_id,
            "customer": query.customer,
            "first_start": windows[0][0],
            "last_end": windows[-1][1],
            "window_starts": [start for start, _ in windows],
            "window_ends": [end for _, end in windows],
            "after_timestamp": None if after is None else after[0],
            "after_id": None if after is None else after[1],
            "group": list(query.group),
            "limit": query.limit + 1,
        }
        with psycopg_transaction(self._engine) as connection:
            rows = connection.execute(statement, parameters).fetchall()
        counted = meter.kind is AggregationKind.COUNT
        events = tuple(
            MatchedEvent(
                event_id=event_id,
                timestamp=timestamp,
                properties_json=properties_json,
                value=Decimal(1) if counted else value,
                distinct_value_json=distinct_value_json,
            )
            for timestamp, event_id, properties_json, value, distinct_value_json in rows[: query.limit]
        )
        return MatchedEventsPage(events=events, has_more=len(rows) > query.limit)


def _state(connection: psycopg.Connection[Any], tenant_id: uuid.UUID, query: UsageQuery) -> str:
    row = connection.execute(
        "SELECT rollup_state FROM meter_versions WHERE id = %s AND tenant_id = %s", (query.meter.version_id, tenant_id)
    ).fetchone()
    if row is None:
        raise Rejected.because("meter_not_found", f"no meter version {query.meter.version_id}", "meter")
    return str(row[0])


def _parameters(tenant_id: uuid.UUID, query: UsageQuery, meter: CompiledMeter, plan: _Plan) -> dict[str, Any]:
    return {
        **meter.parameters,
        "tenant_id": tenant_id,
        "customer": query.customer,
        "start": query.start_utc,
        "end": query.end_utc,
        "interior_start": plan.interior_start,
        "interior_end": plan.interior_end,
        "days_start": plan.days_start,
        "days_end": plan.days_end,
        "hour_starts": [hours[0] for hours in plan.hours],
        "hour_ends": [hours[1] for hours in plan.hours],
        "edge_starts": [edge[0] for edge in plan.edges],
        "edge_ends": [edge[1] for edge in plan.edges],
    }


@contextmanager
def _autocommit(engine: Engine) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection in autocommit mode, for a single read statement (its own snapshot): no
    BEGIN and COMMIT round trips. Put back in transaction mode before it returns to the pool."""
    with engine.connect() as pooled:
        raw = pooled.connection.driver_connection
        if not isinstance(raw, psycopg.Connection):  # pragma: no cover - configuration error
            raise TypeError("tally needs the psycopg 3 driver")
        raw.rollback()
        raw.autocommit = True
        try:
            yield raw
        finally:
            raw.autocommit = False


# ----- count, sum, max, min, latest, unique_count --------------------------------------------------------

# Hours of this customer touched by queued batches (within the rollups' reach), and their days.
_PENDING = """
pending AS MATERIALIZED ({pending}),
pending_days AS MATERIALIZED (SELECT DISTINCT date_trunc('day', hour, 'UTC') AS day FROM pending)"""

# Raw events: the window's cut edges, and the pending hours inside it.
_RAW_RANGES = """
ranges AS (
    SELECT lo, hi FROM unnest(%(edge_starts)s::timestamptz[], %(edge_ends)s::timestamptz[]) AS edge(lo, hi)
    UNION ALL
    SELECT hour, hour + interval '1 hour' FROM pending
    WHERE hour >= %(interior_start)s AND hour < %(interior_end)s
)"""

# One index range scan per range (OFFSET 0 keeps the planner from merging them into one scan of the
# whole window, which would read every raw event of the customer).
_RANGE_SCOPE = """ranges rg CROSS JOIN LATERAL (
    SELECT * FROM events e
    WHERE e.tenant_id = %(tenant_id)s AND e.customer = %(customer)s AND e.type = %(event_type)s
      AND e."timestamp" >= rg.lo AND e."timestamp" < rg.hi
    OFFSET 0) e"""

_ROLLUP_KEY = "tenant_id = %(tenant_id)s AND meter_version_id = %(version_id)s AND customer = %(customer)s"


def _rolled_sql(columns: str, *, values: bool = False) -> str:
    """Rollup rows of the window's whole periods, `at` first: daily rows of the whole days without
    a pending hour, hourly rows of the other whole hours that are not pending (the hour ranges
    outside the days, and the days with a pending hour). Named `rolled` (`rolled_values`)."""
    name = "rolled_values" if values else "rolled"
    hourly = "usage_rollup_values" if values else "usage_rollups"
    daily = "usage_rollup_values_daily" if values else "usage_rollups_daily"
    return f"""
{name}_hour_ranges AS (
    SELECT lo, hi FROM unnest(%(hour_starts)s::timestamptz[], %(hour_ends)s::timestamptz[]) AS hours(lo, hi)
    UNION ALL
    SELECT day, day + interval '1 day' FROM pending_days WHERE day >= %(days_start)s AND day < %(days_end)s
),
{name} AS (
    SELECT r.* FROM {name}_hour_ranges hr CROSS JOIN LATERAL (
        SELECT hour AS at, {columns} FROM {hourly}
        WHERE {_ROLLUP_KEY} AND hour >= hr.lo AND hour < hr.hi OFFSET 0) r
    WHERE r.at NOT IN (SELECT hour FROM pending)
    UNION ALL
    SELECT day, {columns} FROM {daily}
    WHERE {_ROLLUP_KEY} AND day >= %(days_start)s AND day < %(days_end)s
      AND day NOT IN (SELECT day FROM pending_days)
)"""


def _bucket_sql(granularity: Granularity, column: str) -> str:
    if granularity is Granularity.TOTAL:
        return "%(start)s::timestamptz"
    return f"date_trunc('{granularity.value}', {column}, 'UTC')"


def _project_sql(query: UsageQuery) -> str:
    positions = query.group_positions()
    if not positions:
        return "'{}'::text[]"
    return "ARRAY[" + ", ".join(f"group_values[{position + 1}]" for position in positions) + "]::text[]"


def _mergeable(
    connection: psycopg.Connection[Any], query: UsageQuery, meter: CompiledMeter, parameters: dict[str, Any]
) -> tuple[str | None, dict[tuple[GroupValues, int], Cell]]:
    """The cells, and the version's rollup state read in the same statement (None: no such version)."""
    raw = matched_events_sql(meter, _RANGE_SCOPE, 'e."timestamp" >= %(start)s AND e."timestamp" < %(end)s')
    pending = pending_hours_sql('e."timestamp" >= %(interior_start)s AND e."timestamp" < %(interior_end)s')
    bucket, project = _bucket_sql(query.granularity, "at"), _project_sql(query)
    unique = meter.kind is AggregationKind.UNIQUE_COUNT
    # Only the aggregate the meter needs (the ordered one of latest costs a sort).
    value_aggregates = ", ".join(
        [
            "sum(value_sum) AS value_sum" if meter.kind is AggregationKind.SUM else "NULL::numeric AS value_sum",
            "min(value_min) AS value_min" if meter.kind is AggregationKind.MIN else "NULL::numeric AS value_min",
            "max(value_max) AS value_max" if meter.kind is AggregationKind.MAX else "NULL::numeric AS value_max",
            '(array_agg(last_value ORDER BY last_at DESC, last_event_id COLLATE "C" DESC)'
            " FILTER (WHERE last_at IS NOT NULL))[1] AS latest"
            if meter.kind is AggregationKind.LATEST
            else "NULL::numeric AS latest",
        ]
    )
    distinct = ""
    if unique:
        distinct = f""",
{_rolled_sql("group_values, value_key", values=True)},
distinct_parts AS (
    SELECT at, group_values, value_key FROM rolled_values
    UNION ALL
    SELECT "timestamp", group_values, value_key FROM raw WHERE value_key IS NOT NULL
),
distinct_counts AS (
    SELECT {bucket} AS bucket, {project} AS grp, count(DISTINCT value_key) AS distinct_count
    FROM distinct_parts GROUP BY 1, 2
)"""
    rolled_columns = (
        "group_values, event_count, skipped_count, value_sum, value_min, value_max, last_at, last_event_id, last_value"
    )
    statement = f"""
WITH {_PENDING.format(pending=pending)},
{_RAW_RANGES},
raw AS MATERIALIZED ({raw}),
{_rolled_sql(rolled_columns)},
parts AS (
    SELECT * FROM rolled
    UNION ALL
    SELECT "timestamp", group_values, CASE WHEN counted THEN 1 ELSE 0 END, CASE WHEN counted THEN 0 ELSE 1 END,
           value, value, value, CASE WHEN value IS NOT NULL THEN "timestamp" END, event_id, value
    FROM raw
),
totals AS (
    SELECT {bucket} AS bucket, {project} AS grp, sum(event_count) AS event_count,
           sum(skipped_count) AS skipped_count, {value_aggregates}
    FROM parts GROUP BY 1, 2
){distinct}
SELECT version.state, t.bucket, t.grp, t.event_count, t.skipped_count, t.value_sum, t.value_min, t.value_max,
       t.latest, {"d.distinct_count" if unique else "NULL::bigint"}
FROM (SELECT (SELECT rollup_state FROM meter_versions
              WHERE id = %(version_id)s AND tenant_id = %(tenant_id)s) AS state) version
LEFT JOIN totals t ON true
{"LEFT JOIN distinct_counts d ON d.bucket = t.bucket AND d.grp = t.grp" if unique else ""}"""
    positions = _bucket_positions(query)
    cells: dict[tuple[GroupValues, int], Cell] = {}
    rows = connection.execute(statement, parameters).fetchall()
    state = rows[0][0] if rows else None
    for row in rows:
        if row[1] is None:  # no data: the one row only carries the state
            continue
        at, group, event_count, skipped, value_sum, value_min, value_max, latest, distinct_count = row[1:]
        match meter.kind:
            case AggregationKind.COUNT:
                value: Decimal | None = Decimal(event_count)
            case AggregationKind.SUM:
                value = value_sum if value_sum is not None else Decimal(0)
            case AggregationKind.MAX:
                value = value_max
            case AggregationKind.MIN:
                value = value_min
            case AggregationKind.LATEST:
                value = latest
            case AggregationKind.UNIQUE_COUNT:
                value = Decimal(distinct_count or 0)
            case AggregationKind.TIME_WEIGHTED_SUM:  # pragma: no cover - computed by _time_weighted
                raise AssertionError("time-weighted sums are folded from segments")
        cells[(tuple(group), positions[at])] = Cell(value, int(event_count), int(skipped))
    return state, cells


def _bucket_positions(query: UsageQuery) -> Mapping[datetime, int]:
    window_buckets = buckets(query.start, query.end, query.granularity)
    return {bucket_floor(bucket.start, query.granularity): index for index, bucket in enumerate(window_buckets)}


# ----- time_weighted_sum ---------------------------------------------------------------------------------


def _time_weighted(
    connection: psycopg.Connection[Any],
    query: UsageQuery,
    meter: CompiledMeter,
    plan: _Plan,
    parameters: dict[str, Any],
) -> dict[tuple[GroupValues, int], Cell]:
    """Segments of the window (rollup hours, raw events) folded in order after the level each series
    had before the window, which comes from the latest rollup hour before it or from raw events."""
    aggregation = query.meter.definition.aggregation
    if not isinstance(aggregation, TimeWeightedSum):
        raise InvariantViolation("time-weighted windows come from time-weighted meters")
    start = query.start_utc
    # Raw: the window's edges and pending hours, and before the window: the pending hours and the cut
    # part of the first hour (the carry-in may be there). For a raw-only answer: everything before.
    carry_start = BEGINNING if plan.raw_only else floor_hour(start)
    parameters = {**parameters, "carry_start": carry_start}
    pending = pending_hours_sql('e."timestamp" < %(end)s')
    raw = matched_events_sql(meter, _RANGE_SCOPE, 'e."timestamp" < %(end)s')
    ranges = f"""
WITH {_PENDING.format(pending=pending)},
ranges AS (
    SELECT lo, hi FROM unnest(%(edge_starts)s::timestamptz[], %(edge_ends)s::timestamptz[]) AS edge(lo, hi)
    UNION ALL
    SELECT hour, hour + interval '1 hour' FROM pending
    WHERE (hour >= %(interior_start)s AND hour < %(interior_end)s) OR hour < %(carry_start)s
    UNION ALL
    SELECT %(carry_start)s::timestamptz, %(start)s::timestamptz WHERE %(carry_start)s::timestamptz < %(start)s
)"""
    raw_rows = connection.execute(
        f"""{ranges}
SELECT "timestamp", event_id, group_values, value FROM ({raw}) raw""",
        parameters,
    ).fetchall()
    rolled_columns = "group_values, event_count, skipped_count, first_at, first_event_id, last_at, last_value, integral"
    rolled_rows = connection.execute(
        f"""{ranges},
{_rolled_sql(rolled_columns)}
SELECT * FROM rolled""",
        parameters,
    ).fetchall()
    carry_rows = []
    if not plan.raw_only:
        carry_rows = connection.execute(
            f"""{ranges}
SELECT DISTINCT ON (group_key) group_values, last_at, last_event_id, last_value
FROM usage_rollups
WHERE {_ROLLUP_KEY} AND hour < %(carry_start)s AND last_at IS NOT NULL AND hour NOT IN (SELECT hour FROM pending)
ORDER BY group_key, hour DESC""",
            parameters,
        ).fetchall()
    window_buckets = buckets(query.start, query.end, query.granularity)
    positions = _bucket_positions(query)
    group_positions = query.group_positions()

    def project(series: GroupValues) -> GroupValues:
        return tuple(series[position] for position in group_positions)

    def position_of(moment: datetime) -> int:
        return positions[
            bucket_floor(moment, query.granularity) if query.granularity is not Granularity.TOTAL else start
        ]

    latest_before: dict[GroupValues, tuple[datetime, str, Decimal]] = {}

    def offer(series: GroupValues, candidate: tuple[datetime, str, Decimal]) -> None:
        current = latest_before.get(series)
        if current is None or (candidate[0], candidate[1]) > (current[0], current[1]):
            latest_before[series] = candidate

    cells: dict[tuple[GroupValues, int], Cell] = {}
    segments: list[LevelSegment] = []
    for group_values, last_at, last_event_id, last_value in carry_rows:
        offer(tuple(group_values), (last_at, last_event_id, last_value))
    for at, event_id, group_values, value in raw_rows:
        series = tuple(group_values)
        if at < start:
            if value is not None:
                offer(series, (at, event_id, value))
            continue
        cell = cells.setdefault((project(series), position_of(at)), Cell())
        if value is None:
            cell.skipped_events += 1
            continue
        cell.event_count += 1
        segments.append(LevelSegment(series, at, event_id, at, value, Decimal(0)))
    for (
        hour,
        group_values,
        event_count,
        skipped,
        first_at,
        first_event_id,
        last_at,
        last_value,
        integral,
    ) in rolled_rows:
        series = tuple(group_values)
        cell = cells.setdefault((project(series), position_of(hour)), Cell())
        cell.event_count += int(event_count)
        cell.skipped_events += int(skipped)
        if first_at is not None:
            segments.append(LevelSegment(series, first_at, first_event_id, last_at, last_value, integral))
    carry_in = {series: change[2] for series, change in latest_before.items()}
    integrals = fold_time_weighted(query, window_buckets, carry_in, segments)
    per_group: dict[tuple[GroupValues, int], Decimal] = {}
    for series, totals in integrals.items():
        group = project(series)
        for index, total in enumerate(totals):
            per_group[(group, index)] = EXACT.add(per_group.get((group, index), Decimal(0)), total)
    for key, total in per_group.items():
        cells.setdefault(key, Cell()).value = time_weighted_quantity(total, aggregation.time_unit)
    for cell in cells.values():
        if cell.value is None:
            cell.value = Decimal(0)
    return cells
