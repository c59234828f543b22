"""Give one customer a negotiated rate on one price, over a window, without copying any plan.

gather: the customer (locked: overrides of one customer are decided one at a time), the price, the
        tenant's units, the customer's other overrides of this price;
decide: the override document (meter, interval and billing timing taken from the price when left
        out) through `price_from_document`, then `check_override` (currency of the customer and the
        price — `price_currency_must_match_customer` —, same meter, interval and timing) and
        `check_no_overlap`;
apply:  insert.

`effective_from` defaults to the customer's clock now (its test clock's time, if it has one).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id
from tally.adapters.postgres import catalog as store
from tally.adapters.postgres import customers as customer_store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app._catalog_write import stored_price
from tally.app.customer_clock import clock_for_customer
from tally.core.catalog.files import located
from tally.core.catalog.model import check_metadata
from tally.core.catalog.overrides import Window, check_no_overlap, check_override, override_document
from tally.core.rating import price_from_document
from tally.core.rejections import Rejected

Override = store.OverrideRow
OVERRIDES_PER_CUSTOMER_PRICE_MAX = 1_000


@dataclass(frozen=True, slots=True, kw_only=True)
class OverrideInput:
    customer_id: uuid.UUID
    price_id: uuid.UUID
    price: Mapping[str, Any]  # the negotiated price document
    effective_from: datetime | None = None
    effective_until: datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


def create_price_override(engine: Engine, clock: Clock, tenant_id: uuid.UUID, override: OverrideInput) -> Override:
    metadata = check_metadata(override.metadata)

    def work(connection: psycopg.Connection[Any]) -> Override:
        customer = customer_store.get_customer(connection, tenant_id, override.customer_id, for_update=True)
        if customer is None:
            raise Rejected.because("customer_not_found", "no such customer", "customer")
        base_row = store.get_price(connection, tenant_id, override.price_id)
        if base_row is None:
            raise Rejected.because("price_must_exist", "no such price", "price")
        units = store.custom_units(connection, tenant_id)
        base = stored_price(base_row, units)
        with located("override"):
            negotiated = price_from_document(override_document(base_row.document, override.price), units)
        check_override(base, negotiated, customer.currency)
        now = clock.now()
        start = override.effective_from or clock_for_customer(connection, tenant_id, customer.id, system=clock).now()
        window = Window(start, override.effective_until)
        existing = store.overrides_of(connection, tenant_id, customer.id, base_row.id)
        if len(existing) >= OVERRIDES_PER_CUSTOMER_PRICE_MAX:
            raise Rejected.because(
                "price_overrides_exceed_limit",
                f"a customer has at most {OVERRIDES_PER_CUSTOMER_PRICE_MAX} overrides of one price",
            )
        check_no_overlap(window, [Window(row.effective_from, row.effective_until) for row in existing])
        return store.insert_override(
            connection,
            override_id=new_id(),
            tenant_id=tenant_id,
            customer_id=customer.id,
            price_id=base_row.id,
            currency=negotiated.unit.code,
            document=negotiated.document(),
            effective_from=window.effective_from,
            effective_until=window.effective_until,
            metadata=metadata,
            now=now,
        )

    return run_in_transaction(engine, work)
