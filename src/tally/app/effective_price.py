"""The price a customer pays for a catalog price at an instant: the override whose window holds
`at`, else the catalog price. Rating (previews now, billing runs later) reads prices through here.

Usable inside a caller's transaction (`effective_price_in`) or on its own (`effective_price`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.postgres import catalog as store
from tally.adapters.postgres import customers as customer_store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app._catalog_write import stored_price
from tally.core.catalog.overrides import Window, choose
from tally.core.rating import Price, price_from_document
from tally.core.rejections import Rejected


@dataclass(frozen=True, slots=True)
class EffectivePrice:
    price: Price
    price_id: uuid.UUID  # the catalog price
    override_id: uuid.UUID | None  # the override that applies, if any


def effective_price_in(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, customer_id: uuid.UUID, price_id: uuid.UUID, at: datetime
) -> EffectivePrice:
    if customer_store.get_customer(connection, tenant_id, customer_id) is None:
        raise Rejected.because("customer_not_found", "no such customer", "customer")
    row = store.get_price(connection, tenant_id, price_id)
    if row is None:
        raise Rejected.because("price_not_found", "no such price", "price")
    units = store.custom_units(connection, tenant_id)
    overrides = store.overrides_of(connection, tenant_id, customer_id, price_id)
    chosen = choose([(Window(item.effective_from, item.effective_until), item) for item in overrides], at)
    if chosen is None:
        return EffectivePrice(stored_price(row, units), row.id, None)
    return EffectivePrice(price_from_document(chosen.document, units), row.id, chosen.id)


def effective_price(
    engine: Engine, tenant_id: uuid.UUID, customer_id: uuid.UUID, price_id: uuid.UUID, at: datetime
) -> EffectivePrice:
    with psycopg_transaction(engine) as connection:
        return effective_price_in(connection, tenant_id, customer_id, price_id, at)
