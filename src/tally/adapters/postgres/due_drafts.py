"""Drafts whose grace period has run out, by their customer's clock (tables of migration 0010).

A draft's *closing moment* is the earliest `due_at` among its lines: the end of a usage period
billed in arrears, the start of a fee period billed in advance (the end of the period before), the
moment of a one-off charge or of a change. The draft is due for finalization once its customer's
now — a test clock's frozen time, or the real time — is at least the closing moment plus the grace
period. Only reads; the finalizing itself goes through the lifecycle's own writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

Connection = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class DueDraft:
    tenant_id: uuid.UUID
    customer_id: uuid.UUID
    invoice_id: uuid.UUID
    closing_at: datetime


def drafts_due(
    connection: Connection,
    *,
    tenant_id: uuid.UUID | None,
    customer_ids: Sequence[uuid.UUID] | None,
    now: datetime,
    grace_period: timedelta,
    limit: int,
) -> list[DueDraft]:
    """Drafts (of one tenant, or of all when `tenant_id` is None; of the given customers only, if
    named) whose closing moment is at least `grace_period` before their customer's now. `now` is the
    time of customers without a test clock. Oldest closing moment first."""
    rows = connection.execute(
        """SELECT i.tenant_id, i.customer_id, i.id, closing.at
           FROM invoices i
           JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id
           LEFT JOIN test_clocks k ON k.tenant_id = c.tenant_id AND k.id = c.test_clock_id
           CROSS JOIN LATERAL (SELECT min(l.due_at) AS at FROM invoice_lines l WHERE l.invoice_id = i.id) closing
           WHERE i.status = 'draft'
             AND (%(tenant_id)s::uuid IS NULL OR i.tenant_id = %(tenant_id)s)
             AND (%(customer_ids)s::uuid[] IS NULL OR i.customer_id = ANY(%(customer_ids)s::uuid[]))
             AND closing.at <= coalesce(k.frozen_time, %(now)s) - %(grace)s::interval
           ORDER BY closing.at, i.tenant_id, i.customer_id
           LIMIT %(limit)s""",
        {
            "tenant_id": tenant_id,
            "customer_ids": None if customer_ids is None else list(customer_ids),
            "now": now,
            "grace": grace_period,
            "limit": limit,
        },
    ).fetchall()
    return [DueDraft(row[0], row[1], row[2], row[3]) for row in rows]


def closing_moment(connection: Connection, invoice_id: uuid.UUID) -> datetime | None:
    """The earliest `due_at` among the invoice's lines (None: no lines)."""
    row = connection.execute("SELECT min(due_at) FROM invoice_lines WHERE invoice_id = %s", (invoice_id,)).fetchone()
    return None if row is None else row[0]
