"""The billing run's reads and writes for many customers at once (tables of migrations 0005–0014).

Each function here is the many-customer form of a one-customer read or write in `invoices`,
`subscriptions`, `customers` or `usage`, with the same rows and the same meaning: the billing run
gathers a chunk of customers with one statement per kind of row instead of one per customer, and
writes their drafts with COPY. Which rows a customer has, and what they mean, is decided by the same
code in both cases (tally.app._invoicing); only how they travel differs.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.postgres import customers as customer_store
from tally.adapters.postgres import invoices as invoice_store
from tally.adapters.postgres import jsonb
from tally.adapters.postgres.arrays import IntArray, TextArray, TimestampArray, UuidArray
from tally.adapters.postgres.copy_cells import CopyCells
from tally.adapters.postgres.meters import READY
from tally.adapters.postgres.rollups import compile_meter, matched_events_sql, pending_hours_sql
from tally.adapters.postgres.subscriptions import ItemMemo, RecordedEntry, decode_entry
from tally.adapters.postgres.usage import _plan, _project_sql
from tally.core.invoicing import BilledLine, InvoiceLine
from tally.core.metering.aggregation import Cell
from tally.core.metering.meters import AggregationKind
from tally.core.metering.usage import UsageQuery
from tally.core.rejections import InvariantViolation

Connection = psycopg.Connection[Any]

# Customers in one chunk: one transaction, one lock each, one statement per kind of row.
CUSTOMERS_PER_CHUNK_MAX = 5_000
# Aggregations whose cells the batched usage statement computes (the others go one query at a time).
BATCHED_AGGREGATIONS = frozenset({AggregationKind.COUNT, AggregationKind.SUM, AggregationKind.MIN, AggregationKind.MAX})


def _check_chunk(customer_ids: Sequence[uuid.UUID]) -> None:
    if len(customer_ids) > CUSTOMERS_PER_CHUNK_MAX:
        raise InvariantViolation(f"a chunk holds at most {CUSTOMERS_PER_CHUNK_MAX} customers, not {len(customer_ids)}")


# ----- locks and the customers due ----------------------------------------------------------------


def lock_customers(connection: Connection, tenant_id: uuid.UUID, customer_ids: Sequence[uuid.UUID]) -> None:
    """`invoices.lock_customer` for each customer, in the order given (callers sort by id, so two
    chunks never wait for each other in a cycle), until the transaction ends."""
    _check_chunk(customer_ids)
    connection.execute(
        """SELECT count(pg_advisory_xact_lock(
                      hashtextextended('tally.invoicing.customer:' || %s::text || ':' || c.id::text, 0)))
           FROM (SELECT id FROM unnest(%s::uuid[]) WITH ORDINALITY AS t(id, n) ORDER BY n OFFSET 0) c""",
        (tenant_id, UuidArray(customer_ids)),
    )


@contextmanager
def billing_run_lock(engine: Engine, tenant_id: uuid.UUID | None) -> Iterator[bool]:
    """Hold, for the block, the lock of a run over every customer due of `tenant_id` (None: of every
    tenant); yields False, holding nothing, when another run holds it. A session lock on a
    connection of its own, taken without waiting and given back at the end (or when the process
    dies and its connection closes); the connection idles between, never inside a transaction."""
    key = f"tally.billing_run:{tenant_id if tenant_id is not None else '*'}"
    with engine.connect() as pooled:
        connection = pooled.connection.driver_connection
        if not isinstance(connection, psycopg.Connection):  # pragma: no cover - configuration error
            raise TypeError("tally needs the psycopg 3 driver")
        row = connection.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)).fetchone()
        connection.commit()
        held = bool(row and row[0])
        try:
            yield held
        finally:
            if held:
                connection.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
                connection.commit()


def customers_due_after(
    connection: Connection,
    tenant_id: uuid.UUID | None,
    now: datetime,
    after: tuple[uuid.UUID, uuid.UUID] | None,
    limit: int,
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """The (tenant, customer) pairs that may have something to bill at their clock — never billed, a
    subscription written or a one-off charge recorded since the last run, or a billing event due by
    now — by pages: the next `limit` pairs after `after`, in (tenant, id) order, so a run walks every
    customer due without holding them all. Of one tenant, or of every tenant (`tenant_id` None:
    tenant after tenant, each walked as one; one small statement per tenant visited, so a run over
    many tenants costs a statement for each even when few of them have anything due)."""
    if tenant_id is not None:
        if after is not None and after[0] > tenant_id:
            return []
        after_id = after[1] if after is not None and after[0] == tenant_id else None
        return _due_in_tenant(connection, tenant_id, now, after_id, limit)
    pairs: list[tuple[uuid.UUID, uuid.UUID]] = []
    tenant_from = None if after is None else after[0]
    first_read = True
    while True:
        if tenant_from is None:
            query = "SELECT id FROM tenants ORDER BY id LIMIT %(count)s"
        elif first_read:  # `after`'s own tenant first: it may have more customers after `after`
            query = "SELECT id FROM tenants WHERE id >= %(from)s ORDER BY id LIMIT %(count)s"
        else:
            query = "SELECT id FROM tenants WHERE id > %(from)s ORDER BY id LIMIT %(count)s"
        tenants = [row[0] for row in connection.execute(query, {"from": tenant_from, "count": _TENANTS_PER_READ})]
        for tenant in tenants:
            start = after[1] if after is not None and tenant == after[0] else None
            pairs.extend(_due_in_tenant(connection, tenant, now, start, limit - len(pairs)))
            if len(pairs) == limit:
                return pairs
        if len(tenants) < _TENANTS_PER_READ:
            return pairs
        tenant_from, first_read = tenants[-1], False


# Tenants read at a time by a walk over every tenant.
_TENANTS_PER_READ = 100


def _due_in_tenant(
    connection: Connection, tenant_id: uuid.UUID, now: datetime, after_id: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    statement, parameters = customers_due_statement(tenant_id, now, after_id, limit)
    return [(row[0], row[1]) for row in connection.execute(statement, parameters).fetchall()]


def customers_due_statement(
    tenant_id: uuid.UUID, now: datetime, after_id: uuid.UUID | None, limit: int
) -> tuple[str, dict[str, Any]]:
    """The statement and parameters that read one tenant's next `limit` customers due after
    `after_id` (for EXPLAIN too: the tests check that a page reads about `limit` customers, however
    many come after it).

    The keyset condition is written only when given, never as `… IS NULL OR …`: a prepared
    statement's generic plan cannot use an index range for an OR of a parameter test, and would read
    every customer before `after` again on each page (quadratic over a run). It is `id > after_id`
    within the tenant, never the row comparison `(tenant_id, id) > …`: the planner estimates a row
    comparison badly and then reads every customer after `after` and sorts them, for each page,
    again quadratic (measured: 180 ms a page, 8.6 s of a 100,000-customer run). Each customer's
    billing record is one primary key probe (a LATERAL subquery), whatever join order the estimates
    would pick."""
    keyset = "AND c.id > %(after_id)s" if after_id is not None else ""
    statement = f"""SELECT c.tenant_id, c.id FROM customers c
           LEFT JOIN test_clocks t ON t.id = c.test_clock_id
           LEFT JOIN LATERAL (
               SELECT b.customer_id, b.billed_through, b.next_run_at FROM customer_billing b
               WHERE b.tenant_id = c.tenant_id AND b.customer_id = c.id
               LIMIT 1
           ) b ON true
           WHERE c.tenant_id = %(tenant_id)s {keyset}
             AND (EXISTS (SELECT 1 FROM subscriptions s
                          WHERE s.tenant_id = c.tenant_id AND s.customer_id = c.id
                            AND (b.customer_id IS NULL OR s.updated_at >= b.billed_through))
                  OR EXISTS (SELECT 1 FROM one_off_charges o
                             WHERE o.tenant_id = c.tenant_id AND o.customer_id = c.id
                               AND (b.customer_id IS NULL OR o.recorded_at >= b.billed_through))
                  OR b.next_run_at <= coalesce(t.frozen_time, %(now)s))
           ORDER BY c.id
           LIMIT %(limit)s"""
    return statement, {"tenant_id": tenant_id, "now": now, "after_id": after_id, "limit": limit}


# ----- reads ------------------------------------------------------------------------------------------


def customers_with_clocks(
    connection: Connection, tenant_id: uuid.UUID, customer_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[customer_store.CustomerRow, datetime | None]]:
    """Each customer found, with its test clock's frozen time (None: the system clock)."""
    _check_chunk(customer_ids)
    columns = ", ".join(f"c.{name}" for name in customer_store.CUSTOMER_COLUMNS.split(", "))
    rows = connection.execute(
        f"""SELECT {columns}, k.frozen_time FROM customers c
            LEFT JOIN test_clocks k ON k.tenant_id = c.tenant_id AND k.id = c.test_clock_id
            WHERE c.tenant_id = %s AND c.id = ANY(%s)""",
        (tenant_id, UuidArray(customer_ids)),
    ).fetchall()
    found: dict[uuid.UUID, tuple[customer_store.CustomerRow, datetime | None]] = {}
    for row in rows:
        customer = customer_store._customer(row[:-1])
        found[customer.id] = (customer, row[-1])
    return found


def billed_lines_of(
    connection: Connection, tenant_id: uuid.UUID, customer_ids: Sequence[uuid.UUID]
) -> dict[tuple[uuid.UUID, str], list[BilledLine]]:
    """`invoices.billed_lines` of every customer, by (customer, currency)."""
    _check_chunk(customer_ids)
    rows = connection.execute(
        f"""SELECT l.customer_id, l.currency, {invoice_store.BILLED_LINE_COLUMNS}
            FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id
            WHERE l.tenant_id = %(tenant)s AND l.customer_id = ANY(%(ids)s) AND i.status <> 'draft'
            UNION ALL
            SELECT l.customer_id, l.currency, {invoice_store.CREDITED_LINE_COLUMNS} FROM credit_note_lines l
            WHERE l.tenant_id = %(tenant)s AND l.customer_id = ANY(%(ids)s)""",
        {"tenant": tenant_id, "ids": UuidArray(customer_ids)},
    ).fetchall()
    found: dict[tuple[uuid.UUID, str], list[BilledLine]] = defaultdict(list)
    for row in rows:
        found[(row[0], row[1])].append(invoice_store.billed_line(row[2:]))
    return found


def timelines_of(
    connection: Connection, tenant_id: uuid.UUID, customer_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[uuid.UUID, list[RecordedEntry]]]]:
    """Every subscription of each customer (by id) with its timeline in sequence order."""
    _check_chunk(customer_ids)
    rows = (
        jsonb.use_fast_jsonb(connection.cursor())
        .execute(
            """SELECT s.customer_id, s.id, t.sequence, t.kind, t.recorded_at, t.payload
           FROM subscriptions s JOIN subscription_timeline t ON t.subscription_id = s.id
           WHERE s.tenant_id = %s AND s.customer_id = ANY(%s)
           ORDER BY s.customer_id, s.id, t.sequence""",
            (tenant_id, UuidArray(customer_ids)),
        )
        .fetchall()
    )
    found: dict[uuid.UUID, list[tuple[uuid.UUID, list[RecordedEntry]]]] = defaultdict(list)
    items: ItemMemo = {}
    for customer_id, subscription_id, sequence, kind, recorded_at, payload in rows:
        subscriptions = found[customer_id]
        if not subscriptions or subscriptions[-1][0] != subscription_id:
            subscriptions.append((subscription_id, []))
        subscriptions[-1][1].append(decode_entry(sequence, kind, recorded_at, payload, items))
    return found


def customers_with_rows(
    connection: Connection, tenant_id: uuid.UUID, customer_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """The customers with any coupon redemption, credit grant, commitment, price cap, price override
    or own tax rate: those whose terms are read one by one (most customers have none)."""
    _check_chunk(customer_ids)
    rows = connection.execute(
        """SELECT customer_id FROM coupon_redemptions WHERE tenant_id = %(tenant)s AND customer_id = ANY(%(ids)s)
           UNION SELECT customer_id FROM credit_grants WHERE tenant_id = %(tenant)s AND customer_id = ANY(%(ids)s)
           UNION SELECT customer_id FROM commitments WHERE tenant_id = %(tenant)s AND customer_id = ANY(%(ids)s)
           UNION SELECT customer_id FROM price_caps WHERE tenant_id = %(tenant)s AND customer_id = ANY(%(ids)s)
           UNION SELECT customer_id FROM price_overrides WHERE tenant_id = %(tenant)s AND customer_id = ANY(%(ids)s)
           UNION SELECT customer_id FROM tax_rates WHERE tenant_id = %(tenant)s AND customer_id = ANY(%(ids)s)""",
        {"tenant": tenant_id, "ids": UuidArray(customer_ids)},
    ).fetchall()
    return {row[0] for row in rows}


def tenant_has_default_tax_rates(connection: Connection, tenant_id: uuid.UUID) -> bool:
    row = connection.execute(
        "SELECT EXISTS (SELECT 1 FROM tax_rates WHERE tenant_id = %s AND customer_id IS NULL)", (tenant_id,)
    ).fetchone()
    return bool(row and row[0])


def balances_of(
    connection: Connection, tenant_id: uuid.UUID, code: str, externals: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """`invoices.account_balance` of one account code for many (customer external id, unit) pairs;
    a pair without an account is absent (its balance is 0)."""
    if not externals:
        return {}
    rows = connection.execute(
        """SELECT a.customer_id, a.unit_code,
                  CASE WHEN a.normal_balance = 'credit' THEN a.credits_posted - a.debits_posted
                       ELSE a.debits_posted - a.credits_posted END
           FROM ledger_accounts a
           JOIN unnest(%s::text[], %s::text[]) AS p(customer, unit)
             ON p.customer = a.customer_id AND p.unit = a.unit_code
           WHERE a.tenant_id = %s AND a.code = %s""",
        ([customer for customer, _ in externals], [unit for _, unit in externals], tenant_id, code),
    ).fetchall()
    return {(row[0], row[1]): int(row[2]) for row in rows}


def drafts_of(
    connection: Connection, tenant_id: uuid.UUID, customer_ids: Sequence[uuid.UUID]
) -> dict[tuple[uuid.UUID, str, str], tuple[invoice_store.InvoiceRow, list[invoice_store.LineRow]]]:
    """Each customer's drafts of the billing run (reason `period` or `late_usage`; a threshold
    invoice is a draft only inside the transaction that finalizes it), by (customer, currency,
    reason), with their lines in position order."""
    _check_chunk(customer_ids)
    rows = connection.execute(
        f"""SELECT {invoice_store.INVOICE_COLUMNS} FROM invoices
            WHERE tenant_id = %s AND customer_id = ANY(%s) AND status = 'draft'
              AND billing_reason IN ('period', 'late_usage')""",
        (tenant_id, UuidArray(customer_ids)),
    ).fetchall()
    drafts = [invoice_store.InvoiceRow(*row) for row in rows]
    if not drafts:
        return {}
    line_rows = connection.execute(
        f"""SELECT {invoice_store.LINE_COLUMNS} FROM invoice_lines
            WHERE tenant_id = %s AND invoice_id = ANY(%s) ORDER BY invoice_id, position""",
        (tenant_id, UuidArray([draft.id for draft in drafts])),
    ).fetchall()
    lines: dict[uuid.UUID, list[invoice_store.LineRow]] = defaultdict(list)
    for row in line_rows:
        line = invoice_store._line(row)
        lines[line.invoice_id].append(line)
    return {
        (draft.customer_id, draft.currency, draft.billing_reason): (draft, lines.get(draft.id, [])) for draft in drafts
    }


# ----- usage: many customers' totals of one meter version in one statement ----------------------------

_REQUESTS = """
req AS MATERIALIZED (
    SELECT * FROM unnest(%(req)s::int[], %(customers)s::text[], %(interior_starts)s::timestamptz[],
                         %(interior_ends)s::timestamptz[], %(days_starts)s::timestamptz[], %(days_ends)s::timestamptz[])
        AS r(req, customer, interior_start, interior_end, days_start, days_end)
)"""

# The raw events of every distinct (customer, range), each scanned by one index range scan; the same
# event reached through two overlapping ranges (one request's edge, another's pending hour) is kept
# once, then counted once per request whose range holds it (a request's ranges never overlap).
_SCAN_SCOPE = """scan_ranges rg CROSS JOIN LATERAL (
    SELECT * FROM events e
    WHERE e.tenant_id = %(tenant_id)s AND e.customer = rg.customer AND e.type = %(event_type)s
      AND e."timestamp" >= rg.lo AND e."timestamp" < rg.hi
    OFFSET 0) e"""

_ROLLED_COLUMNS = "group_values, event_count, skipped_count, value_sum, value_min, value_max"
_ROLLUP_KEY = "tenant_id = %(tenant_id)s AND meter_version_id = %(version_id)s AND customer = {customer}"


def _totals_statement(query: UsageQuery, meter_sql: str, pending_sql: str) -> str:
    project = _project_sql(query)
    return f"""
WITH {_REQUESTS},
pending AS MATERIALIZED (
    SELECT r.req, p.hour FROM req r CROSS JOIN LATERAL ({pending_sql}) p
),
pending_days AS MATERIALIZED (SELECT DISTINCT req, date_trunc('day', hour, 'UTC') AS day FROM pending),
ranges AS MATERIALIZED (
    SELECT e.req, r.customer, e.lo, e.hi
    FROM unnest(%(edge_req)s::int[], %(edge_starts)s::timestamptz[], %(edge_ends)s::timestamptz[]) AS e(req, lo, hi)
    JOIN req r ON r.req = e.req
    UNION ALL
    SELECT p.req, r.customer, p.hour, p.hour + interval '1 hour' FROM pending p JOIN req r ON r.req = p.req
    WHERE p.hour >= r.interior_start AND p.hour < r.interior_end
),
scan_ranges AS (SELECT DISTINCT customer, lo, hi FROM ranges),
raw AS MATERIALIZED ({meter_sql}),
raw_once AS (SELECT DISTINCT ON (event_id) * FROM raw),
raw_parts AS (
    SELECT rg.req, x.group_values, CASE WHEN x.counted THEN 1 ELSE 0 END AS event_count,
           CASE WHEN x.counted THEN 0 ELSE 1 END AS skipped_count, x.value AS value_sum, x.value AS value_min,
           x.value AS value_max
    FROM raw_once x JOIN ranges rg ON rg.customer = x.customer AND x."timestamp" >= rg.lo AND x."timestamp" < rg.hi
),
hour_ranges AS (
    SELECT h.req, r.customer, h.lo, h.hi
    FROM unnest(%(hour_req)s::int[], %(hour_starts)s::timestamptz[], %(hour_ends)s::timestamptz[]) AS h(req, lo, hi)
    JOIN req r ON r.req = h.req
    UNION ALL
    SELECT d.req, r.customer, d.day, d.day + interval '1 day' FROM pending_days d JOIN req r ON r.req = d.req
    WHERE d.day >= r.days_start AND d.day < r.days_end
),
rolled AS (
    SELECT hr.req, {", ".join(f"x.{name}" for name in _ROLLED_COLUMNS.split(", "))}
    FROM hour_ranges hr CROSS JOIN LATERAL (
        SELECT hour AS at, {_ROLLED_COLUMNS} FROM usage_rollups
        WHERE {_ROLLUP_KEY.format(customer="hr.customer")} AND hour >= hr.lo AND hour < hr.hi OFFSET 0) x
    WHERE NOT EXISTS (SELECT 1 FROM pending p WHERE p.req = hr.req AND p.hour = x.at)
    UNION ALL
    SELECT r.req, {", ".join(f"x.{name}" for name in _ROLLED_COLUMNS.split(", "))}
    FROM req r CROSS JOIN LATERAL (
        SELECT day AS at, {_ROLLED_COLUMNS} FROM usage_rollups_daily
        WHERE {_ROLLUP_KEY.format(customer="r.customer")} AND day >= r.days_start AND day < r.days_end OFFSET 0) x
    WHERE NOT EXISTS (SELECT 1 FROM pending_days d WHERE d.req = r.req AND d.day = x.at)
),
parts AS (
    SELECT req, {_ROLLED_COLUMNS} FROM rolled
    UNION ALL
    SELECT req, {_ROLLED_COLUMNS} FROM raw_parts
)
SELECT req, {project} AS grp, sum(event_count), sum(skipped_count), sum(value_sum), min(value_min), max(value_max)
FROM parts GROUP BY 1, 2"""


def usage_totals(
    connection: Connection, tenant_id: uuid.UUID, queries: Sequence[UsageQuery]
) -> list[dict[tuple[tuple[str | None, ...], int], Cell]]:
    """The cells of each query (total granularity, all of one meter version of a batched
    aggregation), as `PostgresEventStore.usage` computes them for that query alone: daily rollups
    of whole days, hourly rollups of other whole hours, raw events for cut edges and for hours with
    batches still queued; from raw events alone while the version is being backfilled. One
    statement, so one snapshot for every query."""
    if not queries:
        return []
    version = queries[0].meter
    if any(query.meter != version or query.granularity.value != "total" for query in queries):
        raise InvariantViolation("batched usage queries share one meter version and ask for totals")
    if version.definition.aggregation.kind not in BATCHED_AGGREGATIONS:
        raise InvariantViolation(f"{version.definition.aggregation.kind} is not computed in batches")
    row = connection.execute(
        "SELECT rollup_state FROM meter_versions WHERE id = %s AND tenant_id = %s", (version.version_id, tenant_id)
    ).fetchone()
    if row is None:
        raise InvariantViolation(f"meter version {version.version_id} vanished under the billing run")
    raw_only = row[0] != READY
    # The statement's cost estimate passes PostgreSQL's JIT threshold, but it runs in tens of
    # milliseconds: compiling it took three times as long as running it (measured on a server
    # built with JIT; the embedded one has none). For the rest of the chunk's transaction.
    connection.execute("SET LOCAL jit = off")
    meter = compile_meter(version.version_id, version.definition)
    parameters: dict[str, Any] = {**meter.parameters, "tenant_id": tenant_id}
    columns: dict[str, list[Any]] = defaultdict(list)
    for index, query in enumerate(queries):
        plan = _plan(query, raw_only)
        columns["req"].append(index)
        columns["customers"].append(query.customer)
        columns["interior_starts"].append(plan.interior_start)
        columns["interior_ends"].append(plan.interior_end)
        columns["days_starts"].append(plan.days_start)
        columns["days_ends"].append(plan.days_end)
        for low, high in plan.edges:
            columns["edge_req"].append(index)
            columns["edge_starts"].append(low)
            columns["edge_ends"].append(high)
        for low, high in plan.hours:
            columns["hour_req"].append(index)
            columns["hour_starts"].append(low)
            columns["hour_ends"].append(high)
    # Sent as binary arrays, each dumped in one pass (psycopg's lists go element by element).
    for name in ("req", "edge_req", "hour_req"):
        parameters[name] = IntArray(columns.get(name, ()))
    parameters["customers"] = TextArray(columns["customers"])
    for name in ("interior_starts", "interior_ends", "days_starts", "days_ends"):
        parameters[name] = TimestampArray(columns[name])
    for name in ("edge_starts", "edge_ends", "hour_starts", "hour_ends"):
        parameters[name] = TimestampArray(columns.get(name, ()))
    pending = pending_hours_sql('e."timestamp" >= r.interior_start AND e."timestamp" < r.interior_end').replace(
        "%(customer)s", "r.customer"
    )
    statement = _totals_statement(queries[0], matched_events_sql(meter, _SCAN_SCOPE, "true"), pending)
    cells: list[dict[tuple[tuple[str | None, ...], int], Cell]] = [{} for _ in queries]
    kind = version.definition.aggregation.kind
    for index, group, event_count, skipped, value_sum, value_min, value_max in connection.execute(
        statement, parameters
    ).fetchall():
        match kind:
            case AggregationKind.COUNT:
                value = event_count
            case AggregationKind.SUM:
                value = value_sum if value_sum is not None else 0
            case AggregationKind.MIN:
                value = value_min
            case _:
                value = value_max
        cells[index][(tuple(group), 0)] = Cell(
            None if value is None else Decimal(value), int(event_count), int(skipped)
        )
    return cells


# ----- writes -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class NewDraft:
    invoice_id: uuid.UUID
    customer_id: uuid.UUID
    currency: str
    fields: invoice_store.DraftFields
    now: datetime
    billing_reason: str = "period"


@dataclass(frozen=True, slots=True, kw_only=True)
class NewLines:
    invoice_id: uuid.UUID
    customer_id: uuid.UUID
    currency: str
    lines: Sequence[InvoiceLine]
    line_ids: Sequence[uuid.UUID]
    now: datetime


_DRAFT_COLUMNS = (
    "id, tenant_id, customer_id, currency, status, created_at, updated_at, through, period_start, period_end, "
    "subtotal_minor, discount_minor, credits_minor, tax_minor, total_minor, balance_applied_minor, "
    "balance_credited_minor, amount_due_minor, tax, creditable, postings, billing_reason"
)


def delete_lines_of(connection: Connection, invoice_ids: Sequence[uuid.UUID]) -> None:
    if invoice_ids:
        connection.execute("DELETE FROM invoice_lines WHERE invoice_id = ANY(%s)", (list(invoice_ids),))


def delete_drafts(connection: Connection, invoice_ids: Sequence[uuid.UUID]) -> None:
    if invoice_ids:
        connection.execute("DELETE FROM invoices WHERE id = ANY(%s) AND status = 'draft'", (list(invoice_ids),))


def insert_drafts(connection: Connection, tenant_id: uuid.UUID, drafts: Sequence[NewDraft]) -> None:
    """New drafts by COPY (the one-draft-per-currency index refuses a second draft)."""
    if not drafts:
        return
    cells = CopyCells()
    moment = cells.moment
    with connection.cursor() as cursor, cursor.copy(f"COPY invoices ({_DRAFT_COLUMNS}) FROM STDIN") as copy:
        for draft in drafts:
            fields = draft.fields
            copy.write_row(
                (
                    draft.invoice_id,
                    cells.id(tenant_id),
                    draft.customer_id,
                    draft.currency,
                    "draft",
                    moment(draft.now),
                    moment(draft.now),
                    moment(fields.through),
                    moment(fields.period_start),
                    moment(fields.period_end),
                    fields.subtotal_minor,
                    fields.discount_minor,
                    fields.credits_minor,
                    fields.tax_minor,
                    fields.total_minor,
                    fields.balance_applied_minor,
                    fields.balance_credited_minor,
                    fields.amount_due_minor,
                    jsonb.dumps(fields.tax),
                    jsonb.dumps(fields.creditable),
                    jsonb.dumps(fields.postings),
                    draft.billing_reason,
                )
            )


def insert_lines(connection: Connection, tenant_id: uuid.UUID, batches: Sequence[NewLines]) -> None:
    """Drafts' lines by COPY, each row encoded by `invoices.line_row`. A key and sequence already
    billed fails on the UNIQUE constraint and the caller's transaction rolls back."""
    if not any(batch.lines for batch in batches):
        return
    cells = CopyCells()
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY invoice_lines ({invoice_store.LINE_INSERT_COLUMNS}) FROM STDIN") as copy,
    ):
        for batch in batches:
            for position, (line, line_id) in enumerate(zip(batch.lines, batch.line_ids, strict=True)):
                copy.write_row(
                    invoice_store.line_row(
                        line,
                        line_id=line_id,
                        position=position,
                        tenant_id=tenant_id,
                        invoice_id=batch.invoice_id,
                        customer_id=batch.customer_id,
                        currency=batch.currency,
                        now=batch.now,
                        cells=cells,
                    )
                )


def record_customer_runs(
    connection: Connection, tenant_id: uuid.UUID, runs: Sequence[tuple[uuid.UUID, datetime, datetime | None]]
) -> None:
    """`invoices.record_customer_run` for many (customer, billed through, next run at); `now` is the
    billed-through moment, as the one-customer run records it."""
    if not runs:
        return
    connection.execute(
        """INSERT INTO customer_billing (tenant_id, customer_id, billed_through, next_run_at, updated_at)
           SELECT %s, r.customer_id, r.through, r.next_run_at, r.through
           FROM unnest(%s::uuid[], %s::timestamptz[], %s::timestamptz[]) AS r(customer_id, through, next_run_at)
           ON CONFLICT (tenant_id, customer_id) DO UPDATE
               SET billed_through = EXCLUDED.billed_through, next_run_at = EXCLUDED.next_run_at,
                   updated_at = EXCLUDED.updated_at
               WHERE customer_billing.billed_through <= EXCLUDED.billed_through""",
        (
            tenant_id,
            UuidArray([run[0] for run in runs]),
            TimestampArray([run[1] for run in runs]),
            [run[2] for run in runs],
        ),
    )
