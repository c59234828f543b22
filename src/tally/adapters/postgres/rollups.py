"""Meter SQL: the effective-event definition, a meter compiled to SQL, and the rollup statements.

Every path that reads raw events — the tail and window edges of a usage query, the recompute after
a correction, the backfill of a new meter version and `tally usage verify` — builds its SQL from
`effective_events_sql` and `matched_events_sql` below, so they cannot disagree on which events
count or what their values are. The rules are the ones of `tally.core.metering.aggregation`, which
the tests check this SQL against.

Rollups (`usage_rollups`, `usage_rollup_values`) hold, per (meter version, customer, UTC hour,
series), the summary of the effective events of batches that are no longer in `rollup_queue`; the
daily tables (`usage_rollups_daily`, `usage_rollup_values_daily`) the same per UTC day, always equal
to the combination of the day's hourly rows:

| column | filled for |
|---|---|
| event_count, skipped_count | every aggregation |
| value_sum, value_min, value_max, last_at, last_event_id, last_value | sum, max, min, latest, time_weighted_sum |
| first_at, first_event_id, first_value, integral | time_weighted_sum (integral: value × µs) |
| usage_rollup_values.value_key | unique_count |

A batch of new events is *merged* into the hourly and daily rollups (sums add, min/max combine,
latest compares (timestamp, event id), distinct values insert) — except for time-weighted sums,
whose hour summary depends on the order of all the hour's events: those hours are *recomputed* from
raw events, as are the hours a correction touches, for every meter version; the days of recomputed
hours are then recombined from their hours (`refresh_days`).
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from tally.core.metering.meters import (
    COMPARISONS,
    NUMERIC_TEXT_LENGTH_MAX,
    NUMERIC_TEXT_PATTERN,
    AggregationKind,
    FilterOperator,
    MeterDefinition,
    Scalar,
)

# Advisory lock classes (the first key of the two-key form). The rollup worker holds its tenants'
# lock shared and the stripes of its customers exclusively; a backfill holds its tenant's lock
# exclusively, so no rollup transaction of that tenant runs beside it.
TENANT_LOCK_CLASS = 7_301_001
STRIPE_LOCK_CLASS = 7_301_002
STRIPES = 256

_OPERATORS = {FilterOperator.GT: ">", FilterOperator.GTE: ">=", FilterOperator.LT: "<", FilterOperator.LTE: "<="}


def _scalar_json(value: Scalar) -> str:
    """A filter operand as JSON text, for a jsonb parameter."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def numeric_sql(properties: str, key: str) -> str:
    """The property as numeric if it is a number or a numeric string (never a failing cast), else NULL."""
    text = f"({properties} ->> {key})"
    return (
        f"CASE WHEN jsonb_typeof({properties} -> {key}) = 'number' AND length({text}) <= {NUMERIC_TEXT_LENGTH_MAX}"
        f" THEN {text}::numeric"
        f" WHEN jsonb_typeof({properties} -> {key}) = 'string' AND length({text}) <= {NUMERIC_TEXT_LENGTH_MAX}"
        f" AND {text} ~ %(numeric_pattern)s THEN {text}::numeric END"
    )


def value_key_sql(properties: str, key: str) -> str:
    """unique_count: strings by text, numbers by value (trailing zeros trimmed), else NULL."""
    return (
        f"CASE jsonb_typeof({properties} -> {key})"
        f" WHEN 'string' THEN sha256(convert_to('s:' || ({properties} ->> {key}), 'UTF8'))"
        f" WHEN 'number' THEN sha256(convert_to('n:' || trim_scale(({properties} ->> {key})::numeric)::text, 'UTF8'))"
        " END"
    )


GROUP_KEY_SQL = "sha256(convert_to(to_jsonb({values})::text, 'UTF8'))"


@dataclass(frozen=True, slots=True)
class CompiledMeter:
    """A meter version as SQL fragments over an effective event `m` (columns customer, "timestamp",
    event_id, properties), with the parameters they use."""

    version_id: int
    definition: MeterDefinition
    filters: str
    group_values: str
    value: str
    value_key: str
    counted: str
    parameters: dict[str, Any]

    @property
    def kind(self) -> AggregationKind:
        return self.definition.kind

    @property
    def numeric(self) -> bool:
        return self.kind not in (AggregationKind.COUNT, AggregationKind.UNIQUE_COUNT)

    @property
    def time_weighted(self) -> bool:
        return self.kind is AggregationKind.TIME_WEIGHTED_SUM


def compile_meter(version_id: int, definition: MeterDefinition) -> CompiledMeter:
    parameters: dict[str, Any] = {
        "version_id": version_id,
        "event_type": definition.event_type,
        "numeric_pattern": NUMERIC_TEXT_PATTERN,
    }
    conditions = []
    for index, condition in enumerate(definition.filters):
        key = f"filter_{index}_property"
        parameters[key] = condition.property
        if condition.operator in COMPARISONS:
            parameters[f"filter_{index}_value"] = condition.values[0]
            conditions.append(
                f"({numeric_sql('m.properties', f'%({key})s')}) {_OPERATORS[condition.operator]}"
                f" %(filter_{index}_value)s::numeric"
            )
        else:
            parameters[f"filter_{index}_values"] = [_scalar_json(value) for value in condition.values]
            conditions.append(f"(m.properties -> %({key})s) = ANY(%(filter_{index}_values)s::jsonb[])")
    group_parts = []
    for index, key in enumerate(definition.group_by):
        parameters[f"group_{index}"] = key
        group_parts.append(f"m.properties ->> %(group_{index})s")
    group_values = f"ARRAY[{', '.join(group_parts)}]::text[]" if group_parts else "'{}'::text[]"
    value, value_key, counted = "NULL::numeric", "NULL::bytea", "true"
    if definition.value_property is not None:
        parameters["value_property"] = definition.value_property
        if definition.kind is AggregationKind.UNIQUE_COUNT:
            value_key = value_key_sql("m.properties", "%(value_property)s")
            counted = "value_key IS NOT NULL"
        else:
            value = numeric_sql("m.properties", "%(value_property)s")
            counted = "value IS NOT NULL"
    return CompiledMeter(
        version_id=version_id,
        definition=definition,
        filters=" AND ".join(conditions) if conditions else "true",
        group_values=group_values,
        value=value,
        value_key=value_key,
        counted=counted,
        parameters=parameters,
    )


# ----- effective and matched events ----------------------------------------------------------------

# The one definition of an effective event: the raw event with the properties of its latest
# amendment (by created_at, then id); none at all if it has a retraction. `scope` is a FROM clause
# binding the raw events as `e`, `where` restricts them. Two plans of the same definition: for a few
# events, one index probe per event into the corrections (`_AMENDED_PROBE`); for a whole tenant
# (backfill, verify), one hash join with the tenant's latest amendments (`_AMENDED_BULK`).
_LATEST_AMENDMENT_ORDER = "c.created_at DESC, c.id DESC"
_AMENDED_PROBE = f"""LEFT JOIN LATERAL (
    SELECT c.properties FROM event_corrections c
    WHERE c.tenant_id = e.tenant_id AND c.event_id = e.event_id AND c.kind = 'amend'
    ORDER BY {_LATEST_AMENDMENT_ORDER} LIMIT 1) amended ON true"""
_AMENDED_BULK = f"""LEFT JOIN (
    SELECT DISTINCT ON (c.event_id) c.event_id, c.properties FROM event_corrections c
    WHERE c.tenant_id = %(tenant_id)s AND c.kind = 'amend'
    ORDER BY c.event_id, {_LATEST_AMENDMENT_ORDER}) amended ON amended.event_id = e.event_id"""
_EFFECTIVE = """
SELECT e.customer, e."timestamp", e.event_id, e.batch_id, coalesce(amended.properties, e.properties) AS properties
FROM {scope}
{amended}
WHERE {where}
  AND NOT EXISTS (SELECT 1 FROM event_corrections r
                  WHERE r.tenant_id = e.tenant_id AND r.event_id = e.event_id AND r.kind = 'retract')
"""

# Raw events whose batch has been rolled up (no longer queued).
NOT_QUEUED = "NOT EXISTS (SELECT 1 FROM rollup_queue q WHERE q.batch_id = e.batch_id)"


def effective_events_sql(scope: str, where: str, *, bulk: bool = False) -> str:
    return _EFFECTIVE.format(scope=scope, where=where, amended=_AMENDED_BULK if bulk else _AMENDED_PROBE)


def matched_events_sql(
    meter: CompiledMeter, scope: str, where: str, *, bulk: bool = False, properties: bool = False
) -> str:
    """The meter's matching effective events: customer, hour, timestamp, event_id, group_values,
    value (numeric aggregations), value_key (unique_count), counted (false: skipped); with
    `properties`, also the effective properties (to show the events themselves).

    OFFSET 0 keeps the planner from inlining the subquery: the value, dimensions and hour are then
    computed once per event, not once per place the outer query uses them."""
    shown = ", m.properties" if properties else ""
    return f"""
SELECT x.*, {meter.counted} AS counted FROM (
    SELECT m.customer, date_trunc('hour', m."timestamp", 'UTC') AS hour, m."timestamp", m.event_id,
           {meter.group_values} AS group_values, {meter.value} AS value, {meter.value_key} AS value_key{shown}
    FROM ({effective_events_sql(scope, where, bulk=bulk)}) m
    WHERE {meter.filters}
    OFFSET 0
) x"""


# ----- rollup rows -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Span:
    """A rollup granularity: hourly rows summarise raw events; daily rows summarise hourly rows."""

    name: str
    table: str
    values_table: str
    column: str


HOURLY = Span("hour", "usage_rollups", "usage_rollup_values", "hour")
DAILY = Span("day", "usage_rollups_daily", "usage_rollup_values_daily", "day")
SPANS = (HOURLY, DAILY)


def rollup_columns(span: Span) -> str:
    return (
        f"tenant_id, meter_version_id, customer, {span.column}, group_key, group_values, event_count, skipped_count, "
        "value_sum, value_min, value_max, first_at, first_event_id, first_value, last_at, last_event_id, last_value, "
        "integral"
    )


ROLLUP_COLUMNS = rollup_columns(HOURLY)
# Compared by verify: every column that the rollup statements fill.
COMPARED_COLUMNS = (
    "group_values",
    "event_count",
    "skipped_count",
    "value_sum",
    "value_min",
    "value_max",
    "first_at",
    "first_event_id",
    "first_value",
    "last_at",
    "last_event_id",
    "last_value",
    "integral",
)


def _ordered(column: str, descending: bool) -> str:
    direction = "DESC" if descending else "ASC"
    return (
        f'(array_agg({column} ORDER BY "timestamp" {direction}, event_id COLLATE "C" {direction})'
        " FILTER (WHERE value IS NOT NULL))[1]"
    )


def _period(span: Span) -> str:
    """The start of a matched event's period (matched events carry their UTC `hour`)."""
    return "hour" if span is HOURLY else "date_trunc('day', hour, 'UTC')"


def rollup_rows_sql(meter: CompiledMeter, matched: str, span: Span = HOURLY) -> str:
    """Rollup rows (`rollup_columns(span)`, tenant as %(tenant_id)s) from a matched-events query."""
    time_weighted = meter.time_weighted
    source = f"(SELECT matched.*, {_period(span)} AS period FROM matched) AS matched"
    integral = "NULL::numeric"
    if time_weighted:
        # Within one (customer, period, series), in (timestamp, event id) order, each valued event
        # holds its level until the next one: value × microseconds to the next event.
        source = f"""(SELECT matched.*, CASE WHEN value IS NOT NULL THEN lead("timestamp") OVER (
                         PARTITION BY customer, period, group_values, value IS NOT NULL
                         ORDER BY "timestamp", event_id COLLATE "C") END AS next_at
                     FROM {source}) AS matched"""
        integral = (
            'coalesce(sum(value * (extract(epoch FROM next_at) - extract(epoch FROM "timestamp")) * 1000000)'
            " FILTER (WHERE value IS NOT NULL AND next_at IS NOT NULL), 0)"
        )
    at = 'matched."timestamp"'
    kind = meter.kind
    with_last = kind in (AggregationKind.LATEST, AggregationKind.TIME_WEIGHTED_SUM)
    columns = [
        "sum(value)" if kind is AggregationKind.SUM else "NULL::numeric",
        "min(value)" if kind is AggregationKind.MIN else "NULL::numeric",
        "max(value)" if kind is AggregationKind.MAX else "NULL::numeric",
        _ordered(at, False) if time_weighted else "NULL::timestamptz",
        _ordered("event_id", False) if time_weighted else "NULL::text",
        _ordered("value", False) if time_weighted else "NULL::numeric",
        _ordered(at, True) if with_last else "NULL::timestamptz",
        _ordered("event_id", True) if with_last else "NULL::text",
        _ordered("value", True) if with_last else "NULL::numeric",
        f"CASE WHEN count(value) > 0 THEN {integral} END",
    ]
    value_columns = ", ".join(columns)
    return f"""
WITH matched AS ({matched})
SELECT %(tenant_id)s::uuid, %(version_id)s::bigint, customer, period,
       {GROUP_KEY_SQL.format(values="group_values")}, group_values,
       count(*) FILTER (WHERE counted), count(*) FILTER (WHERE NOT counted),
       {value_columns}
FROM {source}
GROUP BY customer, period, group_values"""


def rollup_values_sql(matched: str, span: Span = HOURLY) -> str:
    """The distinct (customer, period, series, value) rows of unique_count, from a matched-events query."""
    return f"""
SELECT DISTINCT %(tenant_id)s::uuid, %(version_id)s::bigint, customer, {_period(span)},
       {GROUP_KEY_SQL.format(values="group_values")}, group_values, value_key
FROM ({matched}) matched
WHERE value_key IS NOT NULL"""


def _merge(span: Span) -> str:
    """ON CONFLICT clause adding a delta row to a stored one (every aggregation but time-weighted sums)."""
    table = span.table
    newer = (
        f"(EXCLUDED.last_at IS NOT NULL AND ({table}.last_at IS NULL OR EXCLUDED.last_at > {table}.last_at"
        f' OR (EXCLUDED.last_at = {table}.last_at AND EXCLUDED.last_event_id COLLATE "C"'
        f' > {table}.last_event_id COLLATE "C")))'
    )
    return f"""
ON CONFLICT (tenant_id, meter_version_id, customer, {span.column}, group_key) DO UPDATE SET
    event_count = {table}.event_count + EXCLUDED.event_count,
    skipped_count = {table}.skipped_count + EXCLUDED.skipped_count,
    value_sum = coalesce({table}.value_sum + EXCLUDED.value_sum, {table}.value_sum, EXCLUDED.value_sum),
    value_min = least({table}.value_min, EXCLUDED.value_min),
    value_max = greatest({table}.value_max, EXCLUDED.value_max),
    last_at = CASE WHEN {newer} THEN EXCLUDED.last_at ELSE {table}.last_at END,
    last_event_id = CASE WHEN {newer} THEN EXCLUDED.last_event_id ELSE {table}.last_event_id END,
    last_value = CASE WHEN {newer} THEN EXCLUDED.last_value ELSE {table}.last_value END"""


def merge_batches(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, meter: CompiledMeter, batch_ids: Sequence[int]
) -> None:
    """Add the events of `batch_ids` to a mergeable meter's hourly and daily rollups (not for
    time-weighted sums, whose periods are recomputed)."""
    if meter.time_weighted:
        raise ValueError("time-weighted rollups are recomputed, never merged")
    matched = matched_events_sql(
        meter, "events e", "e.tenant_id = %(tenant_id)s AND e.batch_id = ANY(%(batch_ids)s) AND e.type = %(event_type)s"
    )
    parameters = {**meter.parameters, "tenant_id": tenant_id, "batch_ids": list(batch_ids)}
    for span in SPANS:
        connection.execute(
            f"INSERT INTO {span.table} ({rollup_columns(span)}) {rollup_rows_sql(meter, matched, span)} {_merge(span)}",
            parameters,
        )
        if meter.kind is AggregationKind.UNIQUE_COUNT:
            connection.execute(
                f"INSERT INTO {span.values_table} {rollup_values_sql(matched, span)} ON CONFLICT DO NOTHING",
                parameters,
            )


def _cells(column: str) -> str:
    """(customer, period) cells given as two parallel arrays."""
    return f"unnest(%(cell_customers)s::text[], %(cell_starts)s::timestamptz[]) AS cell(customer, {column})"


_CELL_SCOPE = (
    f"{_cells('hour')} JOIN events e ON e.tenant_id = %(tenant_id)s AND e.customer = cell.customer"
    ' AND e.type = %(event_type)s AND e."timestamp" >= cell.hour AND e."timestamp" < cell.hour + interval \'1 hour\''
)


@dataclass(frozen=True, slots=True)
class Cell:
    customer: str
    hour: datetime


def _delete_cells(connection: psycopg.Connection[Any], span: Span, parameters: dict[str, Any]) -> None:
    for table in (span.table, span.values_table):
        connection.execute(
            f"""DELETE FROM {table} t USING {_cells(span.column)}
                WHERE t.tenant_id = %(tenant_id)s AND t.meter_version_id = %(version_id)s
                  AND t.customer = cell.customer AND t.{span.column} = cell.{span.column}""",
            parameters,
        )


def recompute_cells(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, meter: CompiledMeter, cells: Iterable[Cell]
) -> None:
    """Replace the rollups of (customer, hour) cells by a recomputation from the effective events of
    batches no longer queued, then their days from their hours. The caller holds the cells' stripe locks."""
    cell_list = sorted(set(cells), key=lambda cell: (cell.customer, cell.hour))
    if not cell_list:
        return
    parameters = {
        **meter.parameters,
        "tenant_id": tenant_id,
        "cell_customers": [cell.customer for cell in cell_list],
        "cell_starts": [cell.hour for cell in cell_list],
    }
    _delete_cells(connection, HOURLY, parameters)
    matched = matched_events_sql(meter, _CELL_SCOPE, NOT_QUEUED)
    connection.execute(f"INSERT INTO usage_rollups ({ROLLUP_COLUMNS}) {rollup_rows_sql(meter, matched)}", parameters)
    if meter.kind is AggregationKind.UNIQUE_COUNT:
        connection.execute(f"INSERT INTO usage_rollup_values {rollup_values_sql(matched)}", parameters)
    days = sorted({(cell.customer, _day(cell.hour)) for cell in cell_list})
    refresh_days(connection, tenant_id, meter, days)


def _day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _days_from_hours_sql(meter: CompiledMeter, hourly_scope: str) -> str:
    """Daily rows combined from the hourly rows `hourly_scope` selects (alias h): counts and sums add,
    min and max combine, first and last come from the first and last valued hour, and a time-weighted
    day is its hours' integrals plus each gap between consecutive valued hours at the earlier level."""
    gap = "NULL::numeric"
    source = f"(SELECT h.*, date_trunc('day', h.hour, 'UTC') AS period FROM {hourly_scope}) AS h"
    if meter.time_weighted:
        source = f"""(SELECT h.*, CASE WHEN h.first_at IS NOT NULL THEN
                         lag(h.last_value) OVER valued * (extract(epoch FROM h.first_at)
                                                          - extract(epoch FROM lag(h.last_at) OVER valued)) * 1000000
                         END AS gap
                     FROM {source}
                     WINDOW valued AS (PARTITION BY h.customer, h.period, h.group_key, h.first_at IS NOT NULL
                                       ORDER BY h.hour)) AS h"""
        gap = "coalesce(sum(gap), 0)"

    def first(column: str) -> str:
        return f"(array_agg({column} ORDER BY hour) FILTER (WHERE first_at IS NOT NULL))[1]"

    def last(column: str) -> str:
        return f"(array_agg({column} ORDER BY hour DESC) FILTER (WHERE last_at IS NOT NULL))[1]"

    return f"""
SELECT tenant_id, meter_version_id, customer, period, group_key, group_values,
       sum(event_count), sum(skipped_count), sum(value_sum), min(value_min), max(value_max),
       {first("first_at")}, {first("first_event_id")}, {first("first_value")},
       {last("last_at")}, {last("last_event_id")}, {last("last_value")},
       CASE WHEN count(integral) > 0 THEN coalesce(sum(integral), 0) + {gap} END
FROM {source}
GROUP BY tenant_id, meter_version_id, customer, period, group_key, group_values"""


def refresh_days(
    connection: psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    meter: CompiledMeter,
    days: Sequence[tuple[str, datetime]],
) -> None:
    """Replace the daily rows of (customer, day) cells by the combination of their hourly rows."""
    if not days:
        return
    parameters = {
        **meter.parameters,
        "tenant_id": tenant_id,
        "cell_customers": [customer for customer, _ in days],
        "cell_starts": [day for _, day in days],
    }
    _delete_cells(connection, DAILY, parameters)
    scope = f"""{_cells("day")} JOIN usage_rollups h
        ON h.tenant_id = %(tenant_id)s AND h.meter_version_id = %(version_id)s AND h.customer = cell.customer
       AND h.hour >= cell.day AND h.hour < cell.day + interval '1 day'"""
    connection.execute(
        f"INSERT INTO usage_rollups_daily ({rollup_columns(DAILY)}) {_days_from_hours_sql(meter, scope)}", parameters
    )
    if meter.kind is AggregationKind.UNIQUE_COUNT:
        connection.execute(
            f"""INSERT INTO usage_rollup_values_daily
                SELECT DISTINCT v.tenant_id, v.meter_version_id, v.customer, cell.day, v.group_key, v.group_values,
                       v.value_key
                FROM {_cells("day")} JOIN usage_rollup_values v
                  ON v.tenant_id = %(tenant_id)s AND v.meter_version_id = %(version_id)s
                 AND v.customer = cell.customer AND v.hour >= cell.day AND v.hour < cell.day + interval '1 day'""",
            parameters,
        )


# Memory for the sorts and hashes of whole-tenant recomputations (backfill, verify), per transaction.
BULK_WORK_MEM = "256MB"
_ALL_SCOPE_WHERE = f"e.tenant_id = %(tenant_id)s AND e.type = %(event_type)s AND {NOT_QUEUED}"


def refresh_statistics(connection: psycopg.Connection[Any]) -> None:
    """ANALYZE the small, fast-changing tables whole-tenant recomputations anti-join against."""
    connection.execute("ANALYZE rollup_queue, event_corrections")


def rebuild_version(connection: psycopg.Connection[Any], tenant_id: uuid.UUID, meter: CompiledMeter) -> int:
    """Replace all rollups of a version by a set-based recomputation: hours from raw events, days
    from hours (backfill). The caller holds the tenant's lock exclusively. Returns the hourly rows written.
    """
    parameters = {**meter.parameters, "tenant_id": tenant_id}
    connection.execute(f"SET LOCAL work_mem = '{BULK_WORK_MEM}'")
    for span in SPANS:
        for table in (span.table, span.values_table):
            connection.execute(
                f"DELETE FROM {table} WHERE tenant_id = %(tenant_id)s AND meter_version_id = %(version_id)s",
                parameters,
            )
    matched = matched_events_sql(meter, "events e", _ALL_SCOPE_WHERE, bulk=True)
    written = connection.execute(
        f"INSERT INTO usage_rollups ({ROLLUP_COLUMNS}) {rollup_rows_sql(meter, matched)}", parameters
    ).rowcount
    scope = "usage_rollups h WHERE h.tenant_id = %(tenant_id)s AND h.meter_version_id = %(version_id)s"
    connection.execute(
        f"INSERT INTO usage_rollups_daily ({rollup_columns(DAILY)}) {_days_from_hours_sql(meter, scope)}", parameters
    )
    if meter.kind is AggregationKind.UNIQUE_COUNT:
        connection.execute(f"INSERT INTO usage_rollup_values {rollup_values_sql(matched)}", parameters)
        connection.execute(
            """INSERT INTO usage_rollup_values_daily
               SELECT DISTINCT tenant_id, meter_version_id, customer, date_trunc('day', hour, 'UTC'), group_key,
                      group_values, value_key
               FROM usage_rollup_values WHERE tenant_id = %(tenant_id)s AND meter_version_id = %(version_id)s""",
            parameters,
        )
    return written


# ----- locks --------------------------------------------------------------------------------------------


def _lock_key(text: str) -> int:
    """A stable signed 32-bit key (advisory locks take int4 pairs)."""
    value = zlib.crc32(text.encode())
    return value - 2**32 if value >= 2**31 else value


def lock_tenants(connection: psycopg.Connection[Any], tenant_ids: Iterable[uuid.UUID], *, exclusive: bool) -> None:
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    keys = sorted({_lock_key(str(tenant_id)) for tenant_id in tenant_ids})
    if keys:
        connection.execute(
            f"SELECT {function}(%s, key) FROM (SELECT key FROM unnest(%s::int[]) AS key ORDER BY key) ordered",
            (TENANT_LOCK_CLASS, keys),
        )


def stripe_of(tenant_id: uuid.UUID, customer: str) -> int:
    return zlib.crc32(f"{tenant_id}/{customer}".encode()) % STRIPES


def lock_stripes(connection: psycopg.Connection[Any], stripes: Iterable[int]) -> None:
    """Lock customer stripes in ascending order (one global order: no deadlocks)."""
    ordered = sorted(set(stripes))
    if ordered:
        connection.execute(
            "SELECT pg_advisory_xact_lock(%s, key) FROM (SELECT key FROM unnest(%s::int[]) AS key ORDER BY key) o",
            (STRIPE_LOCK_CLASS, ordered),
        )


# ----- what queued batches touch ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TouchedCell:
    tenant_id: uuid.UUID
    customer: str
    type: str
    hour: datetime


def cells_of_event_batches(connection: psycopg.Connection[Any], batch_ids: Sequence[int]) -> list[TouchedCell]:
    rows = connection.execute(
        """SELECT DISTINCT e.tenant_id, e.customer, e.type, date_trunc('hour', e."timestamp", 'UTC')
           FROM events e WHERE e.batch_id = ANY(%s)""",
        (list(batch_ids),),
    ).fetchall()
    return [TouchedCell(*row) for row in rows]


# The events a correction is about, found through the dedup registry (which knows each event's
# batch and timestamp: one index probe into the right partition).
CORRECTED_EVENTS = """
event_corrections c
JOIN event_ids i ON i.tenant_id = c.tenant_id AND i.event_id = c.event_id
JOIN events e ON e.tenant_id = i.tenant_id AND e.event_id = i.event_id AND e.batch_id = i.batch_id
             AND e."timestamp" = i."timestamp"
"""


def cells_of_correction_batches(connection: psycopg.Connection[Any], batch_ids: Sequence[int]) -> list[TouchedCell]:
    rows = connection.execute(
        f"""SELECT DISTINCT e.tenant_id, e.customer, e.type, date_trunc('hour', e."timestamp", 'UTC')
            FROM {CORRECTED_EVENTS} WHERE c.batch_id = ANY(%s)""",
        (list(batch_ids),),
    ).fetchall()
    return [TouchedCell(*row) for row in rows]


def pending_hours_sql(where_time: str) -> str:
    """Hours of one customer (and event type) touched by queued batches or queued corrections:
    their rollups may not include everything yet, so queries compute them from raw events.
    `where_time` restricts `e."timestamp"` (lets the planner prune partitions)."""
    return f"""
SELECT date_trunc('hour', e."timestamp", 'UTC') AS hour
FROM rollup_queue q JOIN events e ON e.batch_id = q.batch_id
WHERE q.tenant_id = %(tenant_id)s AND e.tenant_id = %(tenant_id)s AND e.customer = %(customer)s
  AND e.type = %(event_type)s AND {where_time}
UNION
SELECT date_trunc('hour', e."timestamp", 'UTC')
FROM rollup_queue q JOIN {CORRECTED_EVENTS} ON c.batch_id = q.batch_id
WHERE q.tenant_id = %(tenant_id)s AND c.tenant_id = %(tenant_id)s AND e.customer = %(customer)s
  AND e.type = %(event_type)s AND {where_time}"""


# ----- the queue ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueuedBatch:
    batch_id: int
    tenant_id: uuid.UUID
    source: str
    event_count: int


def claim_batches(connection: psycopg.Connection[Any], batches_max: int, events_max: int) -> list[QueuedBatch]:
    """The oldest queued batches no other worker holds, locked until commit: at most `batches_max`,
    and no more events than `events_max` (but always the first batch, however large)."""
    rows = connection.execute(
        """SELECT q.batch_id, q.tenant_id, b.source, b.event_count
           FROM rollup_queue q JOIN ingest_batches b ON b.batch_id = q.batch_id
           ORDER BY q.batch_id LIMIT %s FOR UPDATE OF q SKIP LOCKED""",
        (batches_max,),
    ).fetchall()
    claimed: list[QueuedBatch] = []
    events = 0
    for row in rows:
        batch = QueuedBatch(*row)
        if claimed and events + batch.event_count > events_max:
            break
        claimed.append(batch)
        events += batch.event_count
    return claimed


def dequeue(connection: psycopg.Connection[Any], batch_ids: Sequence[int]) -> None:
    connection.execute("DELETE FROM rollup_queue WHERE batch_id = ANY(%s)", (list(batch_ids),))


# ----- verification ----------------------------------------------------------------------------------------

VERIFY_SAMPLE_MAX = 20


def _pending_cells_sql() -> str:
    """All (customer, hour) cells of the tenant and event type that queued batches touch."""
    return f"""
SELECT e.customer, date_trunc('hour', e."timestamp", 'UTC') AS hour
FROM rollup_queue q JOIN events e ON e.batch_id = q.batch_id
WHERE q.tenant_id = %(tenant_id)s AND e.tenant_id = %(tenant_id)s AND e.type = %(event_type)s
UNION
SELECT e.customer, date_trunc('hour', e."timestamp", 'UTC')
FROM rollup_queue q JOIN {CORRECTED_EVENTS} ON c.batch_id = q.batch_id
WHERE q.tenant_id = %(tenant_id)s AND c.tenant_id = %(tenant_id)s AND e.type = %(event_type)s"""


@dataclass(frozen=True, slots=True)
class Difference:
    span: str  # "hour" or "day"
    customer: str
    start: datetime
    group_values: tuple[str | None, ...]
    what: str  # "missing" (expected, not stored), "unexpected" (stored, not expected), or a column name


@dataclass(frozen=True, slots=True)
class VersionCheck:
    rows_expected: int
    rows_stored: int
    pending_cells: int
    difference_count: int
    sample: tuple[Difference, ...]


def verify_version(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, meter: CompiledMeter, since: datetime
) -> VersionCheck:
    """Recompute every rollup row (and distinct value), hourly and daily, of a version from `since`
    on (an hour boundary: raw events before it may be past retention) from raw effective events and
    compare with what is stored, in the caller's snapshot (REPEATABLE READ). Cells touched by queued
    batches are legitimately behind and are skipped (counted in `pending_cells`)."""
    connection.execute(f"SET LOCAL work_mem = '{BULK_WORK_MEM}'")
    expected = stored = pending = 0
    differences: list[Difference] = []
    for span in SPANS:
        start = since if span is HOURLY else _next_day(since)
        parameters = {
            **meter.parameters,
            "tenant_id": tenant_id,
            "since": start,
            "unique": meter.kind is AggregationKind.UNIQUE_COUNT,
        }
        rows = connection.execute(_verify_sql(meter, span), parameters).fetchall()
        expected += int(rows[0][0])
        stored += int(rows[0][1])
        pending += int(rows[0][2]) if span is HOURLY else 0
        differences.extend(
            Difference(span.name, row[3], row[4], tuple(row[5]), row[6]) for row in rows if row[3] is not None
        )
    return VersionCheck(
        rows_expected=expected,
        rows_stored=stored,
        pending_cells=pending,
        difference_count=len(differences),
        sample=tuple(differences[:VERIFY_SAMPLE_MAX]),
    )


def _next_day(moment: datetime) -> datetime:
    day = _day(moment)
    return day if day == moment else day + timedelta(days=1)


def _verify_sql(meter: CompiledMeter, span: Span) -> str:
    column = span.column
    matched = matched_events_sql(meter, "events e", f'{_ALL_SCOPE_WHERE} AND e."timestamp" >= %(since)s', bulk=True)
    column_checks = " ".join(f"WHEN x.{name} IS DISTINCT FROM s.{name} THEN '{name}'" for name in COMPARED_COLUMNS)
    pending = _pending_cells_sql()
    if span is DAILY:
        pending = f"SELECT DISTINCT customer, date_trunc('day', hour, 'UTC') AS day FROM ({pending}) hours"
    return f"""
WITH pending AS MATERIALIZED ({pending}),
expected AS MATERIALIZED (
    SELECT * FROM ({rollup_rows_sql(meter, matched, span)}) AS x({rollup_columns(span)})
),
stored AS MATERIALIZED (
    SELECT * FROM {span.table}
    WHERE tenant_id = %(tenant_id)s AND meter_version_id = %(version_id)s AND {column} >= %(since)s
),
compared AS (
    SELECT coalesce(x.customer, s.customer) AS customer, coalesce(x.{column}, s.{column}) AS period,
           coalesce(x.group_values, s.group_values) AS group_values,
           CASE WHEN s.customer IS NULL THEN 'missing' WHEN x.customer IS NULL THEN 'unexpected'
                {column_checks} END AS what
    FROM expected x FULL JOIN stored s
      ON s.customer = x.customer AND s.{column} = x.{column} AND s.group_key = x.group_key
),
expected_values AS MATERIALIZED (
    SELECT * FROM ({rollup_values_sql(matched, span)}) AS v(tenant_id, meter_version_id, customer, {column},
                                                            group_key, group_values, value_key)
    WHERE %(unique)s
),
stored_values AS MATERIALIZED (
    SELECT * FROM {span.values_table}
    WHERE tenant_id = %(tenant_id)s AND meter_version_id = %(version_id)s AND {column} >= %(since)s
),
compared_values AS (
    SELECT coalesce(x.customer, s.customer) AS customer, coalesce(x.{column}, s.{column}) AS period,
           coalesce(x.group_values, s.group_values) AS group_values,
           CASE WHEN s.customer IS NULL THEN 'missing distinct value' ELSE 'unexpected distinct value' END AS what
    FROM expected_values x FULL JOIN stored_values s
      ON s.customer = x.customer AND s.{column} = x.{column} AND s.group_key = x.group_key
     AND s.value_key = x.value_key
    WHERE x.customer IS NULL OR s.customer IS NULL
),
found AS (
    SELECT * FROM compared WHERE what IS NOT NULL
    UNION ALL
    SELECT * FROM compared_values
)
SELECT counts.expected, counts.stored, counts.pending, f.customer, f.period, f.group_values, f.what
FROM (SELECT (SELECT count(*) FROM expected) AS expected, (SELECT count(*) FROM stored) AS stored,
             (SELECT count(*) FROM pending) AS pending) counts
LEFT JOIN (SELECT * FROM found
           WHERE NOT EXISTS (SELECT 1 FROM pending p
                             WHERE p.customer = found.customer AND p.{column} = found.period)) f
       ON true
ORDER BY f.customer, f.period
"""
