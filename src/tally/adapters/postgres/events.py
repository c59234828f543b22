"""Metering events in PostgreSQL: the ingest write, corrections, reads, and monthly partitions.

The ingest write is one statement (data-modifying CTEs over the batch's columns as parameters):
register the batch's ids in the forever dedup registry (`event_ids`), store the events whose ids were
new, record the batch and queue it for the rollups — and answer, for the ids that were not new, the
content hash stored under them, and which new events fall in an invoiced period. The API's batches
register with ON CONFLICT DO NOTHING; an import's first find which ids the registry already holds and
register the others with a plain INSERT (falling back to the former when a concurrent transaction
registered one of them meanwhile).
Tables and their semantics: migration 0002_events.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, Final, Literal

import psycopg
from psycopg import sql
from sqlalchemy import Engine

from tally.adapters.postgres.arrays import BytesArray, TextArray, TimestampArray
from tally.adapters.postgres.connections import psycopg_transaction
from tally.core.metering.events import Event

IngestSource = Literal["api", "import", "correction"]
LateKind = Literal["late_event", "retract", "amend"]


@dataclass(frozen=True, slots=True)
class WrittenBatch:
    """What the ingest statement did. `batch_id` is None when no event was new (nothing recorded)."""

    batch_id: int | None
    event_count: int
    # Ids that were registered before this batch, with the content hash stored under them. None for
    # an id registered by a concurrent transaction after this statement's snapshot was taken.
    existing: dict[str, bytes | None]
    # New events whose timestamp is in an already-invoiced period: (event id, customer, timestamp).
    late: list[tuple[str, str, datetime]]


# The batch's columns. Text columns usually go as one string each, the values joined by a separator
# PostgreSQL splits again (`string_to_array`, in C): building a binary `text[]` takes Python work per
# value, joining takes none. A value holding the separator itself (ids, customers and types may hold
# any character but NUL) sends the batch as binary arrays instead.
_DELIMITED_INPUT = r"""
    SELECT * FROM unnest(string_to_array(%(ids)s::text, E'\x1f'), string_to_array(%(customers)s::text, E'\x1f'),
                         string_to_array(%(types)s::text, E'\x1f'), %(timestamps)b::timestamptz[],
                         string_to_array(%(properties)s::text, E'\x1f'), %(hashes)b::bytea[])
        AS input (event_id, customer, type, ts, properties, content_hash)"""
_ARRAY_INPUT = """
    SELECT * FROM unnest(%(ids)b::text[], %(customers)b::text[], %(types)b::text[],
                         %(timestamps)b::timestamptz[], %(properties)b::text[], %(hashes)b::bytea[])
        AS input (event_id, customer, type, ts, properties, content_hash)"""
SEPARATOR: Final = "\x1f"  # ASCII's unit separator, E'\x1f' in the SQL above

# What both writes share: the events stored (the `WHERE` follows), and the batch recorded, queued for
# the rollups and answered (row 0: the batch and its count; the statement's answers follow).
_STORE_EVENTS = """
    INSERT INTO events (tenant_id, event_id, customer, type, "timestamp", properties, received_at, batch_id)
    SELECT %(tenant)s, input.event_id, input.customer, input.type, input.ts, input.properties::jsonb,
           %(received_at)s, batch.batch_id
    FROM input CROSS JOIN batch"""
_RECORD_AND_ANSWER = """
), recorded AS (
    INSERT INTO ingest_batches (batch_id, tenant_id, received_at, source, event_count) OVERRIDING SYSTEM VALUE
    SELECT batch.batch_id, %(tenant)s, %(received_at)s, %(source)s, counted.event_count
    FROM batch, counted WHERE counted.event_count > 0
), queued AS (
    INSERT INTO rollup_queue (batch_id, tenant_id, queued_at)
    SELECT batch.batch_id, %(tenant)s, %(received_at)s FROM batch, counted WHERE counted.event_count > 0
), closures AS (
    SELECT customer, closed_through FROM usage_closures
    WHERE tenant_id = %(tenant)s AND customer = ANY(%(distinct_customers)s::text[])
)
SELECT 0 AS kind, NULL::text AS event_id, NULL::bytea AS content_hash, NULL::text AS customer,
       NULL::timestamptz AS ts, (SELECT batch_id FROM batch) AS batch_id,
       (SELECT event_count FROM counted) AS event_count
UNION ALL"""

_WRITE_EVENTS_TEMPLATE = f"""
WITH input AS ({{input}}
), batch AS (
    SELECT nextval(pg_get_serial_sequence('ingest_batches', 'batch_id')) AS batch_id
), registered AS (
    INSERT INTO event_ids (tenant_id, event_id, content_hash, "timestamp", batch_id)
    SELECT %(tenant)s, input.event_id, input.content_hash, input.ts, batch.batch_id FROM input, batch
    ON CONFLICT DO NOTHING
    RETURNING event_id
), counted AS (
    SELECT count(*)::integer AS event_count FROM registered
), stored AS (
    -- Usually every id is new: then no join is needed to know which events to store.
{_STORE_EVENTS}
    WHERE (SELECT event_count FROM counted) = %(count)s::integer
       OR input.event_id IN (SELECT event_id FROM registered)
{_RECORD_AND_ANSWER}
-- One index probe per id that was not new (a correlated subquery: never a scan of the tenant's
-- whole registry, which a join may choose).
SELECT 1, input.event_id,
       (SELECT known.content_hash FROM event_ids known
        WHERE known.tenant_id = %(tenant)s AND known.event_id = input.event_id),
       NULL, NULL, NULL, NULL
FROM input
WHERE (SELECT event_count FROM counted) < %(count)s::integer
  AND NOT EXISTS (SELECT 1 FROM registered WHERE registered.event_id = input.event_id)
UNION ALL
SELECT 2, input.event_id, NULL, input.customer, input.ts, NULL, NULL
FROM input JOIN registered USING (event_id) JOIN closures ON closures.customer = input.customer
WHERE input.ts < closures.closed_through
"""
_WRITE_EVENTS_DELIMITED: Final = _WRITE_EVENTS_TEMPLATE.replace("{input}", _DELIMITED_INPUT)
_WRITE_EVENTS_ARRAYS: Final = _WRITE_EVENTS_TEMPLATE.replace("{input}", _ARRAY_INPUT)

# The import's write: probe the registry for the batch's ids first, then register the rest with a
# plain INSERT. `ON CONFLICT DO NOTHING` settles each row by speculative insertion (a lock taken and
# a second WAL record per row), which costs PostgreSQL about as much as the rest of the registry
# insert; one index probe per id costs a fraction of that. A probe is only as good as its
# snapshot: an id a concurrent transaction registers meanwhile makes the plain INSERT fail with a
# unique violation, and `write_events` then runs the statement above instead (the unique index
# decides, as always: the probe only spares the common case the cost). That race is rare for an
# import (its router never lets two of its workers write one id at once) but common for the API,
# where a client's retry often overlaps its first attempt still in flight: a lost race costs the
# work done before it plus the statement above, so API batches take that statement directly
# (measured: 51,000 against 67,000 events/s over HTTP when they probed).
#
# The registry is hash-partitioned by id (migration 0002); a probe of the parent table with the
# whole batch's ids searches every partition for every id. So each id is probed in its own
# partition only: PostgreSQL routes a row to remainder `(hashtextextended(id, seed) + salt) mod
# modulus`, the sum taken mod 2^64 (its hash partitioning, fixed since it must survive pg_upgrade; a
# test checks it against where rows really are). With a power-of-two modulus only the low bits of
# each term matter, which keeps the sum within a bigint. A wrong guess would only cost speed: the
# id is then not found, and the unique index refuses it.
REGISTRY_PARTITIONS: Final = 8  # event_ids_0 … event_ids_7, as migration 0002 made them (a power of two)
_HASH_PARTITION_SEED: Final = 0x7A5B22367996DCFD  # PostgreSQL's HASH_PARTITION_SEED
_HASH_COMBINE_SALT: Final = 0x49A0F4DD15E5A8E3  # added by hash_combine64 for the first (only) key
_MASK = REGISTRY_PARTITIONS - 1
REGISTRY_PARTITION_SQL: Final = (
    f"(((hashtextextended({{id}}, {_HASH_PARTITION_SEED}) & {_MASK}) + {_HASH_COMBINE_SALT & _MASK}) & {_MASK})"
)
_PROBES = "\n    UNION ALL\n    ".join(
    f"SELECT event_id, content_hash FROM event_ids_{remainder}"
    f" WHERE tenant_id = %(tenant)s AND event_id = ANY((SELECT ids_{remainder} FROM by_partition)::text[])"
    for remainder in range(REGISTRY_PARTITIONS)
)
_BY_PARTITION = ", ".join(
    f"array_agg(event_id) FILTER (WHERE remainder = {remainder}) AS ids_{remainder}"
    for remainder in range(REGISTRY_PARTITIONS)
)
_NEW = "(SELECT event_count FROM counted) = %(count)s::integer OR input.event_id NOT IN (SELECT event_id FROM known)"
_WRITE_PROBED_TEMPLATE = f"""
WITH input AS ({{input}}
), by_partition AS (
    SELECT {_BY_PARTITION}
    FROM (SELECT event_id, {REGISTRY_PARTITION_SQL.format(id="event_id")} AS remainder FROM input) AS keyed
), known AS MATERIALIZED (
    {_PROBES}
), batch AS (
    SELECT nextval(pg_get_serial_sequence('ingest_batches', 'batch_id')) AS batch_id
), counted AS (
    SELECT %(count)s::integer - count(*)::integer AS event_count FROM known
), registered AS (
    INSERT INTO event_ids (tenant_id, event_id, content_hash, "timestamp", batch_id)
    SELECT %(tenant)s, input.event_id, input.content_hash, input.ts, batch.batch_id
    FROM input CROSS JOIN batch
    WHERE {_NEW}
), stored AS (
{_STORE_EVENTS}
    WHERE {_NEW}
{_RECORD_AND_ANSWER}
SELECT 1, event_id, content_hash, NULL, NULL, NULL, NULL FROM known
UNION ALL
SELECT 2, input.event_id, NULL, input.customer, input.ts, NULL, NULL
FROM input JOIN closures ON closures.customer = input.customer
WHERE input.ts < closures.closed_through AND ({_NEW})
"""
_WRITE_PROBED_DELIMITED: Final = _WRITE_PROBED_TEMPLATE.replace("{input}", _DELIMITED_INPUT)
_WRITE_PROBED_ARRAYS: Final = _WRITE_PROBED_TEMPLATE.replace("{input}", _ARRAY_INPUT)
_SETTLING: Final = {_WRITE_PROBED_DELIMITED: _WRITE_EVENTS_DELIMITED, _WRITE_PROBED_ARRAYS: _WRITE_EVENTS_ARRAYS}

_ID, _CUSTOMER, _TYPE, _TIMESTAMP, _PROPERTIES_JSON, _CONTENT_HASH = (
    attrgetter(name) for name in ("id", "customer", "type", "timestamp", "properties_json", "content_hash")
)


def write_events(
    connection: psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    received_at: datetime,
    source: IngestSource,
    events: Sequence[Event],
) -> WrittenBatch:
    """Register and store `events` (distinct ids; sorted by id so that concurrent writers take the
    registry's row locks in one order). An import's batch probes the registry first
    (`_WRITE_PROBED_TEMPLATE`), the API's settles each id with ON CONFLICT. Does not commit."""
    # Each column taken by `map` over a field getter: no Python frame per event and column.
    customers = list(map(_CUSTOMER, events))
    texts = {
        "ids": list(map(_ID, events)),
        "customers": customers,
        "types": list(map(_TYPE, events)),
        "properties": list(map(_PROPERTIES_JSON, events)),
    }
    parameters: dict[str, Any] = {
        "tenant": tenant_id,
        "received_at": received_at,
        "source": source,
        "timestamps": TimestampArray(map(_TIMESTAMP, events)),
        "hashes": BytesArray(map(_CONTENT_HASH, events)),
        "distinct_customers": TextArray(set(customers)),
        "count": len(events),
    }
    probed = _WRITE_PROBED_DELIMITED
    for name, values in texts.items():
        joined = SEPARATOR.join(values)
        # As many separators as joins: no value holds one (counted in C, like the join).
        if joined.count(SEPARATOR) != len(values) - 1:
            probed = _WRITE_PROBED_ARRAYS
            break
        parameters[name] = joined
    if probed is _WRITE_PROBED_ARRAYS:
        parameters.update((name, TextArray(values)) for name, values in texts.items())
    batch_id: int | None = None
    event_count = 0
    existing: dict[str, bytes | None] = {}
    late: list[tuple[str, str, datetime]] = []
    if source == "import":
        rows = _write_probed(connection, probed, parameters)
    else:
        rows = connection.execute(_SETTLING[probed], parameters, binary=True).fetchall()
    for kind, event_id, stored_hash, customer, timestamp, row_batch_id, row_count in rows:
        if kind == 0:
            event_count = row_count
            batch_id = row_batch_id if row_count else None
        elif kind == 1:
            existing[event_id] = stored_hash
        else:
            late.append((event_id, customer, timestamp))
    return WrittenBatch(batch_id=batch_id, event_count=event_count, existing=existing, late=late)


def _write_probed(connection: psycopg.Connection[Any], statement: str, parameters: dict[str, Any]) -> list[Any]:
    """The probed write; when a concurrent transaction registered one of the ids after the probe,
    the settling one instead. A savepoint makes the lost attempt undo itself alone (in SQL: psycopg's
    `transaction()` on a connection that has run nothing yet would commit on its own)."""
    connection.execute("SAVEPOINT event_write")
    try:
        rows = connection.execute(statement, parameters, binary=True).fetchall()
    except psycopg.errors.UniqueViolation as error:
        if not (error.diag.constraint_name or "").startswith("event_ids"):
            raise
        connection.execute("ROLLBACK TO SAVEPOINT event_write")
        rows = connection.execute(_SETTLING[statement], parameters, binary=True).fetchall()
    connection.execute("RELEASE SAVEPOINT event_write")
    return rows


def registered_hashes(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, event_ids: Sequence[str]
) -> dict[str, bytes]:
    rows = connection.execute(
        "SELECT event_id, content_hash FROM event_ids WHERE tenant_id = %s AND event_id = ANY(%s::text[])",
        (tenant_id, list(event_ids)),
        binary=True,
    ).fetchall()
    return {event_id: content_hash for event_id, content_hash in rows}


def flag_late_usage(
    connection: psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    kind: LateKind,
    flagged_at: datetime,
    rows: Sequence[tuple[uuid.UUID, str, str, datetime]],
) -> None:
    """Record usage that arrived or changed in an invoiced period: (id, event id, customer, timestamp),
    and make the next scheduled billing run look at each of those customers (one with nothing else
    due, a subscription that has ended say, would otherwise never be billed the difference)."""
    if not rows:
        return
    connection.execute(
        """
        INSERT INTO late_usage (id, tenant_id, customer, event_id, "timestamp", kind, flagged_at)
        SELECT id, %(tenant)s, customer, event_id, ts, %(kind)s, %(flagged_at)s
        FROM unnest(%(ids)s::uuid[], %(event_ids)s::text[], %(customers)s::text[], %(timestamps)s::timestamptz[])
            AS late (id, event_id, customer, ts)
        """,
        {
            "tenant": tenant_id,
            "kind": kind,
            "flagged_at": flagged_at,
            "ids": [row[0] for row in rows],
            "event_ids": [row[1] for row in rows],
            "customers": [row[2] for row in rows],
            "timestamps": [row[3] for row in rows],
        },
        binary=True,
    )
    # Due from the flag's moment on the customer's clock (a test clock's frozen time). Billing
    # records locked in id order, as the billing run's chunks lock customers: no deadlock.
    connection.execute(
        """
        WITH due AS (
            SELECT b.customer_id, coalesce(t.frozen_time, %(flagged_at)s) AS at
            FROM customers c
            JOIN customer_billing b ON b.tenant_id = c.tenant_id AND b.customer_id = c.id
            LEFT JOIN test_clocks t ON t.tenant_id = c.tenant_id AND t.id = c.test_clock_id
            WHERE c.tenant_id = %(tenant)s AND c.external_id = ANY(%(customers)s)
            ORDER BY b.customer_id
            FOR UPDATE OF b
        )
        UPDATE customer_billing b SET next_run_at = due.at
        FROM due
        WHERE b.tenant_id = %(tenant)s AND b.customer_id = due.customer_id
          AND (b.next_run_at IS NULL OR b.next_run_at > due.at)
        """,
        {"tenant": tenant_id, "flagged_at": flagged_at, "customers": TextArray(sorted({row[2] for row in rows}))},
    )


# ----- one event and its corrections --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventRow:
    event_id: str
    customer: str
    type: str
    timestamp: datetime
    properties_json: str  # as PostgreSQL prints the jsonb: exact numbers
    received_at: datetime
    batch_id: int


@dataclass(frozen=True, slots=True)
class CorrectionRow:
    id: uuid.UUID
    event_id: str
    kind: Literal["retract", "amend"]
    properties_json: str | None
    reason: str
    created_at: datetime
    batch_id: int


_EVENT_COLUMNS = 'event_id, customer, type, "timestamp", properties::text, received_at, batch_id'
_CORRECTION_COLUMNS = "id, event_id, kind, properties::text, reason, created_at, batch_id"


def find_event(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, event_id: str, *, lock: bool = False
) -> EventRow | None:
    """The stored event with this id, or None (never sent, or its partition is past retention).

    The registry row gives the timestamp and batch, which lead to the event's partition and index
    entry. `lock`: lock the registry row, so corrections of one event are serialized.
    """
    registered = connection.execute(
        'SELECT "timestamp", batch_id FROM event_ids WHERE tenant_id = %s AND event_id = %s'
        + (" FOR UPDATE" if lock else ""),
        (tenant_id, event_id),
    ).fetchone()
    if registered is None:
        return None
    row = connection.execute(
        f"""SELECT {_EVENT_COLUMNS} FROM events
            WHERE tenant_id = %s AND event_id = %s AND "timestamp" = %s AND batch_id = %s""",
        (tenant_id, event_id, registered[0], registered[1]),
    ).fetchone()
    return EventRow(*row) if row is not None else None


def corrections_of(connection: psycopg.Connection[Any], tenant_id: uuid.UUID, event_id: str) -> list[CorrectionRow]:
    rows = connection.execute(
        f"""SELECT {_CORRECTION_COLUMNS} FROM event_corrections
            WHERE tenant_id = %s AND event_id = %s ORDER BY created_at, id""",
        (tenant_id, event_id),
    ).fetchall()
    return [CorrectionRow(*row) for row in rows]


def corrections_of_events(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, event_ids: Sequence[str]
) -> dict[str, list[CorrectionRow]]:
    found: dict[str, list[CorrectionRow]] = {}
    if not event_ids:
        return found
    rows = connection.execute(
        f"""SELECT {_CORRECTION_COLUMNS} FROM event_corrections
            WHERE tenant_id = %s AND event_id = ANY(%s::text[]) ORDER BY created_at, id""",
        (tenant_id, list(event_ids)),
    ).fetchall()
    for row in rows:
        found.setdefault(row[1], []).append(CorrectionRow(*row))
    return found


def write_correction(
    connection: psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    *,
    correction_id: uuid.UUID,
    event_id: str,
    kind: Literal["retract", "amend"],
    properties_json: str | None,
    reason: str,
    created_at: datetime,
) -> CorrectionRow:
    """Record a correction as its own batch (source `correction`, one row) and queue it for the
    rollups. Does not commit."""
    batch_id = connection.execute(
        """
        WITH batch AS (
            INSERT INTO ingest_batches (tenant_id, received_at, source, event_count)
            VALUES (%(tenant)s, %(created_at)s, 'correction', 1) RETURNING batch_id
        ), correction AS (
            INSERT INTO event_corrections (id, tenant_id, event_id, kind, properties, reason, created_at, batch_id)
            SELECT %(id)s, %(tenant)s, %(event_id)s, %(kind)s, %(properties)s::jsonb, %(reason)s, %(created_at)s,
                   batch_id
            FROM batch
        ), queued AS (
            INSERT INTO rollup_queue (batch_id, tenant_id, queued_at)
            SELECT batch_id, %(tenant)s, %(created_at)s FROM batch
        )
        SELECT batch_id FROM batch
        """,
        {
            "tenant": tenant_id,
            "id": correction_id,
            "event_id": event_id,
            "kind": kind,
            "properties": properties_json,
            "reason": reason,
            "created_at": created_at,
        },
    ).fetchone()
    if batch_id is None:  # pragma: no cover - INSERT … RETURNING always returns its row
        raise RuntimeError("the correction batch was not recorded")
    stored = connection.execute(
        f"SELECT {_CORRECTION_COLUMNS} FROM event_corrections WHERE id = %s", (correction_id,)
    ).fetchone()
    if stored is None:  # pragma: no cover
        raise RuntimeError("the correction was not recorded")
    return CorrectionRow(*stored)


def closed_through(connection: psycopg.Connection[Any], tenant_id: uuid.UUID, customer: str) -> datetime | None:
    row = connection.execute(
        "SELECT closed_through FROM usage_closures WHERE tenant_id = %s AND customer = %s", (tenant_id, customer)
    ).fetchone()
    return row[0] if row is not None else None


# ----- listing ------------------------------------------------------------------------------------


def list_events(
    connection: psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    *,
    customer: str | None,
    type: str | None,
    start: datetime,
    end: datetime,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[EventRow]:
    """Events with `start <= timestamp < end`, ordered by timestamp then id, after the cursor
    `(timestamp, id)`; at most `limit` rows."""
    conditions = [sql.SQL('tenant_id = %(tenant)s AND "timestamp" >= %(start)s AND "timestamp" < %(end)s')]
    if customer is not None:
        conditions.append(sql.SQL("customer = %(customer)s"))
    if type is not None:
        conditions.append(sql.SQL("type = %(type)s"))
    if after is not None:
        conditions.append(sql.SQL('("timestamp", event_id) > (%(after_timestamp)s, %(after_id)s)'))
    query = sql.SQL(
        'SELECT {columns} FROM events WHERE {conditions} ORDER BY "timestamp", event_id LIMIT %(limit)s'
    ).format(columns=sql.SQL(_EVENT_COLUMNS), conditions=sql.SQL(" AND ").join(conditions))
    rows = connection.execute(
        query,
        {
            "tenant": tenant_id,
            "start": start,
            "end": end,
            "customer": customer,
            "type": type,
            "after_timestamp": after[0] if after else None,
            "after_id": after[1] if after else None,
            "limit": limit,
        },
    ).fetchall()
    return [EventRow(*row) for row in rows]


# ----- partitions ---------------------------------------------------------------------------------

# Serializes partition maintenance across processes (several may start at once).
_PARTITION_LOCK_KEY = 0x7A11E0E7
PARTITION_LOCK_TIMEOUT_MS = 5_000


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    start: datetime
    end: datetime


def _month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def _next_month(month: datetime) -> datetime:
    return datetime(month.year + (month.month == 12), month.month % 12 + 1, 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    return f"events_{month.year:04d}_{month.month:02d}"


def months_between(start: datetime, end: datetime) -> list[datetime]:
    """The first instants of the months that overlap `[start, end)`."""
    months = []
    month = _month_start(start)
    while month < end:
        months.append(month)
        month = _next_month(month)
    return months


_LIST_PARTITIONS = """
SELECT child.relname, pg_get_expr(child.relpartbound, child.oid)
FROM pg_inherits JOIN pg_class child ON child.oid = pg_inherits.inhrelid
WHERE pg_inherits.inhparent = 'events'::regclass
"""


def event_partitions(connection: psycopg.Connection[Any]) -> list[Partition]:
    """The monthly partitions of `events` (named events_YYYY_MM), oldest first; the default one excluded."""
    partitions = []
    for name, _bound in connection.execute(_LIST_PARTITIONS).fetchall():
        if not (name.startswith("events_") and len(name) == len("events_2025_01") and name[7:11].isdigit()):
            continue
        month = datetime(int(name[7:11]), int(name[12:14]), 1, tzinfo=UTC)
        partitions.append(Partition(name, month, _next_month(month)))
    return sorted(partitions, key=lambda partition: partition.start)


def ensure_event_partitions(engine: Engine, start: datetime, end: datetime) -> list[str]:
    """Create the monthly partitions `events_YYYY_MM` covering `[start, end)` that are missing;
    returns the names created. Rows already in the default partition for a new month are moved
    into it (PostgreSQL refuses to create a partition the default one holds rows for)."""
    created = []
    with psycopg_transaction(engine) as connection:
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK_KEY,))
        existing = {partition.name for partition in event_partitions(connection)}
        missing = [month for month in months_between(start, end) if partition_name(month) not in existing]
        if missing:
            _lock_events(connection)
        for month in missing:
            name = partition_name(month)
            _create_partition(connection, name, month, _next_month(month))
            created.append(name)
    return created


def _lock_events(connection: psycopg.Connection[Any]) -> None:
    """Take the lock that creating, attaching or detaching a partition needs anyway, up front (so rows
    cannot land in the default partition between moving them and creating the partition). A
    long-running reader could make it wait, and every writer queue behind the wait: give up after a
    few seconds instead (`LockNotAvailable`; the daily job tries again)."""
    connection.execute(f"SET LOCAL lock_timeout = '{PARTITION_LOCK_TIMEOUT_MS}ms'")
    connection.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")


def _create_partition(connection: psycopg.Connection[Any], name: str, start: datetime, end: datetime) -> None:
    bounds = {"start": start, "end": end}
    stray = connection.execute(
        'SELECT EXISTS (SELECT 1 FROM events_default WHERE "timestamp" >= %(start)s AND "timestamp" < %(end)s)',
        bounds,
    ).fetchone()
    if stray is not None and stray[0]:
        connection.execute(
            """CREATE TEMP TABLE events_moving ON COMMIT DROP AS
               WITH moved AS (DELETE FROM events_default WHERE "timestamp" >= %(start)s AND "timestamp" < %(end)s
                              RETURNING *)
               SELECT * FROM moved""",
            bounds,
        )
    connection.execute(
        sql.SQL("CREATE TABLE {} PARTITION OF events FOR VALUES FROM ({}) TO ({})").format(
            sql.Identifier(name), sql.Literal(start.isoformat()), sql.Literal(end.isoformat())
        )
    )
    if stray is not None and stray[0]:
        connection.execute("INSERT INTO events SELECT * FROM events_moving")
        connection.execute("DROP TABLE events_moving")


def drop_event_partitions_before(engine: Engine, cutoff: datetime) -> list[str]:
    """Detach and drop the monthly partitions that end at or before `cutoff` (every event in them is
    older); returns their names. The dedup registry (`event_ids`) is never touched."""
    dropped = []
    with psycopg_transaction(engine) as connection:
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK_KEY,))
        expired = [partition for partition in event_partitions(connection) if partition.end <= cutoff]
        if expired:
            _lock_events(connection)
        for partition in expired:
            connection.execute(sql.SQL("ALTER TABLE events DETACH PARTITION {}").format(sql.Identifier(partition.name)))
            connection.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(partition.name)))
            dropped.append(partition.name)
    return dropped
