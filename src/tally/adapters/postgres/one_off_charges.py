"""One-off charges in PostgreSQL: `one_off_charges` and `one_off_charge_cancellations` (migration 0014).

A charge's status is derived from the other facts, in one place (`_STATUS`): `cancelled` when it
has a cancellation, `invoiced` when a line of a finalized invoice carries it (found by the line's
full key, so through the UNIQUE index of `invoice_lines`), else `pending`.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

from tally.adapters.pagination import Page, PageRequest
from tally.adapters.postgres.arrays import UuidArray
from tally.adapters.postgres.pagination import keyset_rows

Connection = psycopg.Connection[Any]

PENDING = "pending"
INVOICED = "invoiced"
CANCELLED = "cancelled"
STATUSES = (PENDING, INVOICED, CANCELLED)


@dataclass(frozen=True, slots=True)
class ChargeRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    customer_id: uuid.UUID
    price_id: uuid.UUID
    price_code: str
    currency: str
    quantity: Decimal
    description: str
    charged_at: datetime
    invoice_now: bool
    idempotency_key: str | None
    recorded_at: datetime
    cancelled_at: datetime | None
    # The finalized invoice whose line carries the charge (None: not invoiced).
    invoice_id: uuid.UUID | None
    status: str


# The invoice line of a charge `c`, by the line's full key.
_LINE_OF_CHARGE = """
    SELECT l.invoice_id FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id
    WHERE l.tenant_id = c.tenant_id AND l.customer_id = c.customer_id AND l.currency = c.currency
      AND l.subscription_id = '' AND l.price_id = c.price_id::text
      AND l.service_start = c.charged_at AND l.service_end = c.charged_at AND l.group_values = '[]'::jsonb
      AND l.kind = 'one_off' AND l.reference = c.id::text AND l.sequence = 0 AND i.status <> 'draft'"""

_CHARGES = f"""(
    SELECT c.id, c.tenant_id, c.customer_id, c.price_id, p.code AS price_code, c.currency, c.quantity,
           c.description, c.charged_at, c.invoice_now, c.idempotency_key, c.recorded_at,
           x.cancelled_at, billed.invoice_id,
           CASE WHEN x.charge_id IS NOT NULL THEN '{CANCELLED}'
                WHEN billed.invoice_id IS NOT NULL THEN '{INVOICED}'
                ELSE '{PENDING}' END AS status
    FROM one_off_charges c
    JOIN prices p ON p.tenant_id = c.tenant_id AND p.id = c.price_id
    LEFT JOIN one_off_charge_cancellations x ON x.tenant_id = c.tenant_id AND x.charge_id = c.id
    LEFT JOIN LATERAL ({_LINE_OF_CHARGE} LIMIT 1) billed ON true
) charges"""

_COLUMNS = (
    "id, tenant_id, customer_id, price_id, price_code, currency, quantity, description, charged_at, invoice_now, "
    "idempotency_key, recorded_at, cancelled_at, invoice_id, status"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewCharge:
    id: uuid.UUID
    tenant_id: uuid.UUID
    customer_id: uuid.UUID
    price_id: uuid.UUID
    currency: str
    quantity: Decimal
    description: str
    charged_at: datetime
    invoice_now: bool
    idempotency_key: str | None
    recorded_at: datetime


def insert_charge(connection: Connection, charge: NewCharge) -> None:
    connection.execute(
        """INSERT INTO one_off_charges (id, tenant_id, customer_id, price_id, currency, quantity, description,
                                        charged_at, invoice_now, idempotency_key, recorded_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            charge.id,
            charge.tenant_id,
            charge.customer_id,
            charge.price_id,
            charge.currency,
            charge.quantity,
            charge.description,
            charge.charged_at,
            charge.invoice_now,
            charge.idempotency_key,
            charge.recorded_at,
        ),
    )


def insert_cancellation(
    connection: Connection, tenant_id: uuid.UUID, charge_id: uuid.UUID, cancelled_at: datetime, recorded_at: datetime
) -> None:
    connection.execute(
        """INSERT INTO one_off_charge_cancellations (tenant_id, charge_id, cancelled_at, recorded_at)
           VALUES (%s, %s, %s, %s)""",
        (tenant_id, charge_id, cancelled_at, recorded_at),
    )


def get_charge(connection: Connection, tenant_id: uuid.UUID, charge_id: uuid.UUID) -> ChargeRow | None:
    row = connection.execute(
        f"SELECT {_COLUMNS} FROM {_CHARGES} WHERE tenant_id = %s AND id = %s", (tenant_id, charge_id)
    ).fetchone()
    return ChargeRow(*row) if row else None


def charge_by_idempotency_key(connection: Connection, tenant_id: uuid.UUID, key: str) -> ChargeRow | None:
    row = connection.execute(
        f"SELECT {_COLUMNS} FROM {_CHARGES} WHERE tenant_id = %s AND idempotency_key = %s", (tenant_id, key)
    ).fetchone()
    return ChargeRow(*row) if row else None


def list_charges(
    connection: Connection,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    page: PageRequest,
    *,
    status: str | None = None,
) -> Page[ChargeRow]:
    """A customer's charges, newest first, optionally of one status."""
    filters = ["tenant_id = %(tenant_id)s", "customer_id = %(customer_id)s"]
    parameters: dict[str, Any] = {"tenant_id": tenant_id, "customer_id": customer_id}
    if status is not None:
        filters.append("status = %(status)s")
        parameters["status"] = status
    rows, has_more = keyset_rows(connection, _CHARGES, _COLUMNS, filters, parameters, page)
    return Page(items=[ChargeRow(*row) for row in rows], has_more=has_more, backwards=page.backwards)


def pending_charges_of(
    connection: Connection, tenant_id: uuid.UUID, customer_ids: Sequence[uuid.UUID], limit_per_customer: int
) -> dict[uuid.UUID, list[ChargeRow]]:
    """Each customer's pending charges (any currency, any moment), oldest first: at most
    `limit_per_customer` + 1 each, so a caller can tell that a limit is passed."""
    rows = connection.execute(
        f"""SELECT {_COLUMNS} FROM (
                SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY charged_at, id) AS n
                FROM {_CHARGES}
                WHERE tenant_id = %s AND customer_id = ANY(%s) AND status = '{PENDING}') ranked
            WHERE n <= %s ORDER BY customer_id, charged_at, id""",
        (tenant_id, UuidArray(customer_ids), limit_per_customer + 1),
    ).fetchall()
    found: dict[uuid.UUID, list[ChargeRow]] = defaultdict(list)
    for row in rows:
        charge = ChargeRow(*row)
        found[charge.customer_id].append(charge)
    return found


def count_pending(connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> int:
    row = connection.execute(
        f"SELECT count(*) FROM {_CHARGES} WHERE tenant_id = %s AND customer_id = %s AND status = '{PENDING}'",
        (tenant_id, customer_id),
    ).fetchone()
    return int(row[0]) if row else 0
