"""End a price override at a time (default: the customer's clock now): from then on the catalog
price applies again. An end only ever moves earlier (the database refuses anything else); ending
before the override starts is `effective_until_must_follow_effective_from`, and ending one that
already ended earlier is `price_override_already_ended`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import catalog as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app.customer_clock import clock_for_customer
from tally.core.catalog.overrides import Window
from tally.core.rejections import Rejected


def end_price_override(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, override_id: uuid.UUID, at: datetime | None = None
) -> store.OverrideRow:
    def work(connection: psycopg.Connection[Any]) -> store.OverrideRow:
        row = store.get_override(connection, tenant_id, override_id, for_update=True)
        if row is None:
            raise Rejected.because("price_override_not_found", "no such price override", "override")
        end = at or clock_for_customer(connection, tenant_id, row.customer_id, system=clock).now()
        Window(row.effective_from, end)  # ends after it starts
        if row.effective_until is not None and row.effective_until <= end:
            raise Rejected.because(
                "price_override_already_ended", f"the override ends at {row.effective_until.isoformat()}", "at"
            )
        return store.end_override(connection, row.id, end, clock.now())

    return run_in_transaction(engine, work)
