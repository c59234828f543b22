"""Customers and test clocks in PostgreSQL: the `customers` and `test_clocks` tables (migration 0005)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from tally.adapters.pagination import Page, PageRequest
from tally.adapters.postgres.pagination import keyset_rows
from tally.core.customers import Address, CustomerFields, TaxId

READY = "ready"
ADVANCING = "advancing"


@dataclass(frozen=True, slots=True)
class CustomerRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    external_id: str
    name: str
    email: str | None
    currency: str | None
    billing_address: Address | None
    tax_ids: tuple[TaxId, ...]
    timezone: str
    metadata: dict[str, str]
    test_clock_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


CUSTOMER_COLUMNS = (
    "id, tenant_id, external_id, name, email, currency, billing_address, tax_ids, timezone, metadata, "
    "test_clock_id, created_at, updated_at"
)


def _customer(row: Sequence[Any]) -> CustomerRow:
    values = list(row)
    values[6] = Address.from_document(values[6]) if values[6] is not None else None
    values[7] = tuple(TaxId(item["type"], item["value"]) for item in values[7])
    return CustomerRow(*values)


@dataclass(frozen=True, slots=True)
class TestClockRow:
    __test__ = False  # not a pytest test class

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    frozen_time: datetime
    status: str
    advancing_from: datetime | None
    advance_started_at: datetime | None
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime


TEST_CLOCK_COLUMNS = (
    "id, tenant_id, name, frozen_time, status, advancing_from, advance_started_at, metadata, created_at, updated_at"
)


def _fields_parameters(fields: CustomerFields) -> dict[str, Any]:
    return {
        "name": fields.name,
        "email": fields.email,
        "billing_address": json.dumps(fields.billing_address.document()) if fields.billing_address else None,
        "tax_ids": json.dumps([tax_id.document() for tax_id in fields.tax_ids]),
        "timezone": fields.timezone,
        "metadata": json.dumps(dict(fields.metadata)),
    }


def insert_customer(
    connection: psycopg.Connection[Any],
    *,
    customer_id: uuid.UUID,
    tenant_id: uuid.UUID,
    external_id: str,
    currency: str | None,
    fields: CustomerFields,
    test_clock_id: uuid.UUID | None,
    now: datetime,
) -> CustomerRow | None:
    """The new customer, or None when the tenant already has one with this external id."""
    row = connection.execute(
        f"""INSERT INTO customers (id, tenant_id, external_id, name, email, currency, billing_address, tax_ids,
                                   timezone, metadata, test_clock_id, created_at, updated_at)
            VALUES (%(id)s, %(tenant_id)s, %(external_id)s, %(name)s, %(email)s, %(currency)s, %(billing_address)s,
                    %(tax_ids)s, %(timezone)s, %(metadata)s, %(test_clock_id)s, %(now)s, %(now)s)
            ON CONFLICT (tenant_id, external_id) DO NOTHING
            RETURNING {CUSTOMER_COLUMNS}""",
        {
            "id": customer_id,
            "tenant_id": tenant_id,
            "external_id": external_id,
            "currency": currency,
            "test_clock_id": test_clock_id,
            "now": now,
            **_fields_parameters(fields),
        },
    ).fetchone()
    return _customer(row) if row else None


def update_customer(
    connection: psycopg.Connection[Any],
    customer_id: uuid.UUID,
    *,
    currency: str | None,
    fields: CustomerFields,
    now: datetime,
) -> CustomerRow:
    row = connection.execute(
        f"""UPDATE customers SET name = %(name)s, email = %(email)s, currency = %(currency)s,
                   billing_address = %(billing_address)s, tax_ids = %(tax_ids)s, timezone = %(timezone)s,
                   metadata = %(metadata)s, updated_at = %(now)s
            WHERE id = %(id)s RETURNING {CUSTOMER_COLUMNS}""",
        {"id": customer_id, "currency": currency, "now": now, **_fields_parameters(fields)},
    ).fetchone()
    if row is None:  # pragma: no cover - the caller holds the row's lock
        raise LookupError(f"customer {customer_id} vanished")
    return _customer(row)


def get_customer(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, customer_id: uuid.UUID, *, for_update: bool = False
) -> CustomerRow | None:
    lock = " FOR UPDATE" if for_update else ""
    row = connection.execute(
        f"SELECT {CUSTOMER_COLUMNS} FROM customers WHERE tenant_id = %s AND id = %s{lock}", (tenant_id, customer_id)
    ).fetchone()
    return _customer(row) if row else None


def get_customer_by_external_id(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, external_id: str
) -> CustomerRow | None:
    row = connection.execute(
        f"SELECT {CUSTOMER_COLUMNS} FROM customers WHERE tenant_id = %s AND external_id = %s", (tenant_id, external_id)
    ).fetchone()
    return _customer(row) if row else None


def list_customers(
    connection: psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    page: PageRequest,
    *,
    test_clock_id: uuid.UUID | None = None,
) -> Page[CustomerRow]:
    filters = ["tenant_id = %(tenant_id)s"]
    parameters: dict[str, Any] = {"tenant_id": tenant_id}
    if test_clock_id is not None:
        filters.append("test_clock_id = %(test_clock_id)s")
        parameters["test_clock_id"] = test_clock_id
    rows, has_more = keyset_rows(connection, "customers", CUSTOMER_COLUMNS, filters, parameters, page)
    return Page(items=[_customer(row) for row in rows], has_more=has_more, backwards=page.backwards)


def customer_ids_on_clock(connection: psycopg.Connection[Any], test_clock_id: uuid.UUID) -> list[uuid.UUID]:
    rows = connection.execute(
        "SELECT id FROM customers WHERE test_clock_id = %s ORDER BY id", (test_clock_id,)
    ).fetchall()
    return [row[0] for row in rows]


def count_customers_on_clock(connection: psycopg.Connection[Any], test_clock_id: uuid.UUID) -> int:
    row = connection.execute("SELECT count(*) FROM customers WHERE test_clock_id = %s", (test_clock_id,)).fetchone()
    return int(row[0]) if row else 0


def frozen_time_of_customer(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, customer_id: uuid.UUID
) -> tuple[bool, datetime | None]:
    """(whether the customer exists, the frozen time of its test clock or None when it has none)."""
    row = connection.execute(
        """SELECT c.test_clock_id, k.frozen_time FROM customers c
           LEFT JOIN test_clocks k ON k.tenant_id = c.tenant_id AND k.id = c.test_clock_id
           WHERE c.tenant_id = %s AND c.id = %s""",
        (tenant_id, customer_id),
    ).fetchone()
    if row is None:
        return False, None
    return True, row[1]


def unit_exists(connection: psycopg.Connection[Any], tenant_id: uuid.UUID, code: str) -> bool:
    row = connection.execute("SELECT 1 FROM units WHERE tenant_id = %s AND code = %s", (tenant_id, code)).fetchone()
    return row is not None


# Test clocks.


def insert_test_clock(
    connection: psycopg.Connection[Any],
    *,
    test_clock_id: uuid.UUID,
    tenant_id: uuid.UUID,
    name: str,
    frozen_time: datetime,
    metadata: Mapping[str, str],
    now: datetime,
) -> TestClockRow:
    row = connection.execute(
        f"""INSERT INTO test_clocks (id, tenant_id, name, frozen_time, status, metadata, created_at, updated_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {TEST_CLOCK_COLUMNS}""",
        (test_clock_id, tenant_id, name, frozen_time, READY, json.dumps(dict(metadata)), now, now),
    ).fetchone()
    if row is None:  # pragma: no cover - INSERT … RETURNING returns the row
        raise LookupError("test clock not inserted")
    return TestClockRow(*row)


def count_test_clocks(connection: psycopg.Connection[Any], tenant_id: uuid.UUID) -> int:
    row = connection.execute("SELECT count(*) FROM test_clocks WHERE tenant_id = %s", (tenant_id,)).fetchone()
    return int(row[0]) if row else 0


def get_test_clock(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, test_clock_id: uuid.UUID, *, for_update: bool = False
) -> TestClockRow | None:
    lock = " FOR UPDATE" if for_update else ""
    row = connection.execute(
        f"SELECT {TEST_CLOCK_COLUMNS} FROM test_clocks WHERE tenant_id = %s AND id = %s{lock}",
        (tenant_id, test_clock_id),
    ).fetchone()
    return TestClockRow(*row) if row else None


def lock_tenant_test_clocks(connection: psycopg.Connection[Any], tenant_id: uuid.UUID) -> None:
    """Serialize test clock creation per tenant (so the per-tenant limit holds)."""
    connection.execute("SELECT 1 FROM tenants WHERE id = %s FOR NO KEY UPDATE", (tenant_id,))


def list_test_clocks(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, page: PageRequest
) -> Page[TestClockRow]:
    rows, has_more = keyset_rows(
        connection, "test_clocks", TEST_CLOCK_COLUMNS, ["tenant_id = %(tenant_id)s"], {"tenant_id": tenant_id}, page
    )
    return Page(items=[TestClockRow(*row) for row in rows], has_more=has_more, backwards=page.backwards)


def start_advance(
    connection: psycopg.Connection[Any], test_clock_id: uuid.UUID, *, to: datetime, started_at: datetime
) -> TestClockRow:
    """Move the clock to `to` and mark it advancing (from its current time) until `finish_advance`."""
    row = connection.execute(
        f"""UPDATE test_clocks SET status = %s, advancing_from = frozen_time, frozen_time = %s,
                   advance_started_at = %s, updated_at = %s
            WHERE id = %s RETURNING {TEST_CLOCK_COLUMNS}""",
        (ADVANCING, to, started_at, started_at, test_clock_id),
    ).fetchone()
    if row is None:  # pragma: no cover - the caller holds the row's lock
        raise LookupError(f"test clock {test_clock_id} vanished")
    return TestClockRow(*row)


def renew_advance(connection: psycopg.Connection[Any], test_clock_id: uuid.UUID, started_at: datetime) -> None:
    """Take over an advance that was left unfinished (its lease expired or was released)."""
    connection.execute(
        "UPDATE test_clocks SET advance_started_at = %s WHERE id = %s AND status = %s",
        (started_at, test_clock_id, ADVANCING),
    )


def release_advance(connection: psycopg.Connection[Any], test_clock_id: uuid.UUID, frozen_time: datetime) -> None:
    """Let the next caller resume this advance at once (its hooks failed)."""
    connection.execute(
        "UPDATE test_clocks SET advance_started_at = 'epoch' WHERE id = %s AND status = %s AND frozen_time = %s",
        (test_clock_id, ADVANCING, frozen_time),
    )


def finish_advance(
    connection: psycopg.Connection[Any], test_clock_id: uuid.UUID, frozen_time: datetime, now: datetime
) -> TestClockRow | None:
    """Mark the advance to `frozen_time` done; None if it is not (or no longer) the one in progress."""
    row = connection.execute(
        f"""UPDATE test_clocks SET status = %s, advancing_from = NULL, advance_started_at = NULL, updated_at = %s
            WHERE id = %s AND status = %s AND frozen_time = %s RETURNING {TEST_CLOCK_COLUMNS}""",
        (READY, now, test_clock_id, ADVANCING, frozen_time),
    ).fetchone()
    return TestClockRow(*row) if row else None


def delete_test_clock(connection: psycopg.Connection[Any], test_clock_id: uuid.UUID) -> None:
    connection.execute("DELETE FROM test_clocks WHERE id = %s", (test_clock_id,))
