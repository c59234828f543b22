"""Read customers: one by id, one by external id, and the list (newest first, cursor pages).

A customer is read from its own row only. Usage events name customers by external id and may
arrive before the customer exists; reading a customer never looks at them (usage queries do, with
`customer=<external id>`).
"""

from __future__ import annotations

import uuid

from sqlalchemy import Engine

from tally.adapters.pagination import Page, PageRequest
from tally.adapters.postgres import customers as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.core.rejections import Rejected

Customer = store.CustomerRow


def get_customer(engine: Engine, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> Customer:
    with psycopg_transaction(engine) as connection:
        customer = store.get_customer(connection, tenant_id, customer_id)
    if customer is None:
        raise Rejected.because("customer_not_found", "no such customer", "id")
    return customer


def find_customer_by_external_id(engine: Engine, tenant_id: uuid.UUID, external_id: str) -> Customer | None:
    with psycopg_transaction(engine) as connection:
        return store.get_customer_by_external_id(connection, tenant_id, external_id)


def get_customer_by_external_id(engine: Engine, tenant_id: uuid.UUID, external_id: str) -> Customer:
    customer = find_customer_by_external_id(engine, tenant_id, external_id)
    if customer is None:
        raise Rejected.because(
            "customer_not_found", f"no customer with external id {external_id[:80]!r}", "external_id"
        )
    return customer


def list_customers(
    engine: Engine, tenant_id: uuid.UUID, page: PageRequest | None = None, *, test_clock_id: uuid.UUID | None = None
) -> Page[Customer]:
    """The tenant's customers, newest first; only those on one test clock when it is given."""
    with psycopg_transaction(engine) as connection:
        return store.list_customers(connection, tenant_id, page or PageRequest(), test_clock_id=test_clock_id)
