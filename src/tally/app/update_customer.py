"""Update a customer's details: name, email, billing address, tax ids, timezone, metadata, currency.

Fields left as `UNCHANGED` keep their value; `None` clears an optional field (email, address).
Lists and metadata are replaced whole, as sent. The external id and the test clock never change.

Currency is set once: a customer created without one may get it by update, and from then on it is
fixed — a different value is rejected `customer_currency_immutable`. (Invoices and ledger accounts
are kept in the customer's currency; changing it would need a migration of what was billed, which
billing does not offer.) Sending the current currency again is not a change.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Final

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import customers as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app.create_customer import Customer, check_currency
from tally.core.customers import Address, CustomerFields, TaxId
from tally.core.rejections import Rejected


class _Unchanged(Enum):
    UNCHANGED = "unchanged"


UNCHANGED: Final = _Unchanged.UNCHANGED


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerUpdate:
    name: str | _Unchanged = UNCHANGED
    email: str | _Unchanged | None = UNCHANGED
    currency: str | _Unchanged = UNCHANGED
    billing_address: Address | _Unchanged | None = UNCHANGED
    tax_ids: tuple[TaxId, ...] | _Unchanged = UNCHANGED
    timezone: str | _Unchanged = UNCHANGED
    metadata: Mapping[str, str] | _Unchanged = UNCHANGED


def update_customer(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, customer_id: uuid.UUID, update: CustomerUpdate
) -> Customer:
    def work(connection: psycopg.Connection[Any]) -> Customer:
        customer = store.get_customer(connection, tenant_id, customer_id, for_update=True)
        if customer is None:
            raise Rejected.because("customer_not_found", "no such customer", "id")
        current = CustomerFields(
            name=customer.name,
            email=customer.email,
            billing_address=customer.billing_address,
            tax_ids=customer.tax_ids,
            timezone=customer.timezone,
            metadata=customer.metadata,
        )
        changes = {
            name: value
            for name in ("name", "email", "billing_address", "tax_ids", "timezone", "metadata")
            if (value := getattr(update, name)) is not UNCHANGED
        }
        fields = replace(current, **changes).validate()
        currency = customer.currency
        if update.currency is not UNCHANGED and update.currency != customer.currency:
            if customer.currency is not None:
                raise Rejected.because(
                    "customer_currency_immutable",
                    f"the customer's currency is {customer.currency}, set for good once set",
                    "currency",
                )
            check_currency(connection, tenant_id, update.currency)
            currency = update.currency
        if fields == current and currency == customer.currency:
            return customer  # nothing changes: no write, updated_at stays
        now = clock.now()
        if customer.test_clock_id is not None:
            test_clock = store.get_test_clock(connection, tenant_id, customer.test_clock_id)
            if test_clock is not None:
                now = test_clock.frozen_time
        return store.update_customer(connection, customer.id, currency=currency, fields=fields, now=now)

    return run_in_transaction(engine, work)
