"""`late_usage` flags in PostgreSQL (migrations 0002 and 0013): read, listed and resolved once.

Ingest and event corrections write a flag (`events.flag_late_usage`) for usage that arrived or
changed in a period already invoiced; the billing run resolves it in the transaction that bills or
credits the difference. A resolved flag is frozen by a trigger.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from tally.adapters.pagination import Page, PageRequest
from tally.adapters.postgres.arrays import TextArray, UuidArray
from tally.adapters.postgres.pagination import keyset_rows

Connection = psycopg.Connection[Any]

# Open flags one billing run resolves per customer; more are resolved by the runs after it (a run
# that leaves some open reports them, and the integrity check finds flags left too long).
OPEN_FLAGS_PER_CUSTOMER_MAX = 10_000


@dataclass(frozen=True, slots=True)
class FlagRow:
    id: uuid.UUID
    customer: str  # the customer's external id, as the event carries it
    event_id: str
    timestamp: datetime
    kind: str  # late_event, retract, amend
    flagged_at: datetime
    resolved_at: datetime | None
    resolution: str | None


_COLUMNS = 'id, customer, event_id, "timestamp", kind, flagged_at, resolved_at, resolution'


def open_flags_of(connection: Connection, tenant_id: uuid.UUID, customers: Sequence[str]) -> dict[str, list[FlagRow]]:
    """The open flags of each customer (by external id), oldest event first, at most
    `OPEN_FLAGS_PER_CUSTOMER_MAX` each. The billing run reads them before it measures usage and
    resolves only those (see `Gathered.flags`)."""
    if not customers:
        return {}
    rows = connection.execute(
        f"""SELECT {_COLUMNS} FROM (
                SELECT l.*, row_number() OVER (PARTITION BY l.customer ORDER BY l."timestamp", l.id) AS n
                FROM late_usage l
                WHERE l.tenant_id = %s AND l.customer = ANY(%s) AND l.resolved_at IS NULL) f
            WHERE n <= %s ORDER BY customer, "timestamp", id""",
        (tenant_id, TextArray(customers), OPEN_FLAGS_PER_CUSTOMER_MAX),
    ).fetchall()
    found: dict[str, list[FlagRow]] = defaultdict(list)
    for row in rows:
        found[row[1]].append(FlagRow(*row))
    return found


def resolve(
    connection: Connection, tenant_id: uuid.UUID, resolutions: Sequence[tuple[uuid.UUID, str]], now: datetime
) -> int:
    """Mark each (flag, resolution) resolved at `now`; a flag resolved meanwhile is left as it is.
    Answers how many were resolved."""
    if not resolutions:
        return 0
    cursor = connection.execute(
        """UPDATE late_usage l SET resolved_at = %s, resolution = r.resolution
           FROM unnest(%s::uuid[], %s::text[]) AS r(id, resolution)
           WHERE l.tenant_id = %s AND l.id = r.id AND l.resolved_at IS NULL""",
        (now, [flag for flag, _ in resolutions], [resolution for _, resolution in resolutions], tenant_id),
    )
    return cursor.rowcount


def place(
    connection: Connection, tenant_id: uuid.UUID, placements: Sequence[tuple[uuid.UUID, uuid.UUID | None]]
) -> None:
    """Record for each open flag the draft its lines are on now (None: none)."""
    if not placements:
        return
    connection.execute(
        """UPDATE late_usage l SET placed_on = p.draft
           FROM unnest(%s::uuid[], %s::uuid[]) AS p(id, draft)
           WHERE l.tenant_id = %s AND l.id = p.id AND l.resolved_at IS NULL
             AND l.placed_on IS DISTINCT FROM p.draft""",
        (UuidArray([flag for flag, _ in placements]), [draft for _, draft in placements], tenant_id),
    )


def resolve_placed_on(
    connection: Connection, tenant_id: uuid.UUID, customer: str, invoice_id: uuid.UUID, now: datetime
) -> int:
    """Resolve `customer`'s open flags whose lines are on `invoice_id` (`invoice:<id>`); answers how many."""
    cursor = connection.execute(
        """UPDATE late_usage SET resolved_at = %s, resolution = %s
           WHERE tenant_id = %s AND customer = %s AND resolved_at IS NULL AND placed_on = %s""",
        (now, f"invoice:{invoice_id}", tenant_id, customer, invoice_id),
    )
    return cursor.rowcount


def list_flags(
    connection: Connection,
    tenant_id: uuid.UUID,
    page: PageRequest,
    *,
    customer: str | None = None,
    resolved: bool | None = None,
) -> Page[FlagRow]:
    """Newest flag first (ids are UUIDv7)."""
    filters = ["tenant_id = %(tenant_id)s"]
    parameters: dict[str, Any] = {"tenant_id": tenant_id}
    if customer is not None:
        filters.append("customer = %(customer)s")
        parameters["customer"] = customer
    if resolved is not None:
        filters.append("resolved_at IS NOT NULL" if resolved else "resolved_at IS NULL")
    rows, has_more = keyset_rows(connection, "late_usage", _COLUMNS, filters, parameters, page)
    return Page(items=[FlagRow(*row) for row in rows], has_more=has_more, backwards=page.backwards)
