"""Create a customer: the company's own customer id (`external_id`) and the details billing needs.

The external id is unique per tenant. Creating a second customer with one already taken is rejected
`customer_external_id_taken` (409), whatever the rest of the request says, as Orb does: a create
never quietly answers a different object than the one asked for. Retries of a create are made safe
by the Idempotency-Key header instead, and "get or create" flows look the external id up first.

A customer created on a test clock (`test_clock_id`, at creation only) lives at the clock's time:
its `created_at` is the clock's frozen time, and `clock_for_customer` answers that clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import CUSTOMER, format_id, new_id
from tally.adapters.postgres import customers as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.core.customers import TIMEZONE_DEFAULT, Address, CustomerFields, TaxId, validate_external_id
from tally.core.money import ISO_4217_MINOR_UNITS
from tally.core.rejections import Rejected

Customer = store.CustomerRow

# Stripe allows three customers per test clock; simulations of a few plans need a few more.
CUSTOMERS_PER_TEST_CLOCK_MAX = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerInput:
    external_id: str
    name: str | None = None  # default: the external id
    email: str | None = None
    currency: str | None = None  # ISO 4217 or a tenant's unit; may also be set later, once
    billing_address: Address | None = None
    tax_ids: tuple[TaxId, ...] = ()
    timezone: str = TIMEZONE_DEFAULT
    metadata: Mapping[str, str] = field(default_factory=dict)
    test_clock_id: uuid.UUID | None = None


def check_currency(connection: psycopg.Connection[Any], tenant_id: uuid.UUID, code: str) -> None:
    """An ISO 4217 currency or a custom unit the tenant declared (POST /v1/units)."""
    if code in ISO_4217_MINOR_UNITS:
        return
    if store.unit_exists(connection, tenant_id, code):
        return
    raise Rejected.because(
        "customer_currency_unknown",
        f"{code[:40]!r} is neither an ISO 4217 currency (USD, EUR, JPY) nor a unit of this tenant",
        "currency",
    )


def create_customer(engine: Engine, clock: Clock, tenant_id: uuid.UUID, customer: CustomerInput) -> Customer:
    validate_external_id(customer.external_id)
    fields = CustomerFields(
        name=customer.name if customer.name is not None else customer.external_id,
        email=customer.email,
        billing_address=customer.billing_address,
        tax_ids=customer.tax_ids,
        timezone=customer.timezone,
        metadata=customer.metadata,
    ).validate()

    def work(connection: psycopg.Connection[Any]) -> Customer:
        if customer.currency is not None:
            check_currency(connection, tenant_id, customer.currency)
        now = clock.now()
        if customer.test_clock_id is not None:
            # Locked: the count below holds, and an advance cannot start between reading its time and
            # the insert.
            test_clock = store.get_test_clock(connection, tenant_id, customer.test_clock_id, for_update=True)
            if test_clock is None:
                raise Rejected.because("test_clock_not_found", "no such test clock", "test_clock")
            if store.count_customers_on_clock(connection, test_clock.id) >= CUSTOMERS_PER_TEST_CLOCK_MAX:
                raise Rejected.because(
                    "test_clock_customers_exceed_limit",
                    f"a test clock has at most CUSTOMERS_PER_TEST_CLOCK_MAX = {CUSTOMERS_PER_TEST_CLOCK_MAX} customers",
                    "test_clock",
                )
            now = test_clock.frozen_time
        row = store.insert_customer(
            connection,
            customer_id=new_id(),
            tenant_id=tenant_id,
            external_id=customer.external_id,
            currency=customer.currency,
            fields=fields,
            test_clock_id=customer.test_clock_id,
            now=now,
        )
        if row is None:
            existing = store.get_customer_by_external_id(connection, tenant_id, customer.external_id)
            existing_id = format_id(CUSTOMER, existing.id) if existing else "another customer"
            raise Rejected.because(
                "customer_external_id_taken",
                f"external id {customer.external_id[:80]!r} belongs to {existing_id}; update that customer instead",
                "external_id",
            )
        return row

    return run_in_transaction(engine, work)
