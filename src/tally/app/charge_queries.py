"""Read one-off charges: one by id, or a customer's a page at a time (optionally of one status).
Another tenant's charge or customer is not found."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine

from tally.adapters.pagination import Page, PageRequest
from tally.adapters.postgres import customers as customer_store
from tally.adapters.postgres import one_off_charges as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.core.rejections import Rejected

STATUSES = store.STATUSES


def get_charge(engine: Engine, tenant_id: uuid.UUID, charge_id: uuid.UUID) -> store.ChargeRow:
    with psycopg_transaction(engine) as connection:
        found = store.get_charge(connection, tenant_id, charge_id)
    if found is None:
        raise Rejected.because("charge_not_found", "no such charge", "id")
    return found


def list_charges(
    engine: Engine, tenant_id: uuid.UUID, customer_id: uuid.UUID, page: PageRequest, *, status: str | None = None
) -> Page[store.ChargeRow]:
    """The customer's charges, newest first."""
    if status is not None and status not in STATUSES:
        raise Rejected.because("charge_status_invalid", f"status is one of {', '.join(STATUSES)}", "status")
    with psycopg_transaction(engine) as connection:
        if customer_store.get_customer(connection, tenant_id, customer_id) is None:
            raise Rejected.because("customer_not_found", "no such customer", "id")
        return store.list_charges(connection, tenant_id, customer_id, page, status=status)
