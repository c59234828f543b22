"""Archive a price: it can no longer be added to plan versions, and its code is free for a new price.
Plan versions and subscriptions that use it keep it (a price never changes). Archiving twice
answers the price as it is."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import catalog as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.core.rejections import InvariantViolation, Rejected


def archive_price(engine: Engine, clock: Clock, tenant_id: uuid.UUID, price_id: uuid.UUID) -> store.PriceRow:
    def work(connection: psycopg.Connection[Any]) -> store.PriceRow:
        row = store.get_price(connection, tenant_id, price_id, for_update=True)
        if row is None:
            raise Rejected.because("price_not_found", "no such price", "price")
        if row.archived_at is None:
            store.archive_price(connection, row.id, clock.now())
        archived = store.get_price(connection, tenant_id, price_id)
        if archived is None:
            raise InvariantViolation("the price just archived must read back")
        return archived

    return run_in_transaction(engine, work)
