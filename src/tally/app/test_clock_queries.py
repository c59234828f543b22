"""Read test clocks: one by id, and the list (newest first, cursor pages)."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine

from tally.adapters.pagination import Page, PageRequest
from tally.adapters.postgres import customers as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.core.rejections import Rejected

TestClock = store.TestClockRow


def get_test_clock(engine: Engine, tenant_id: uuid.UUID, test_clock_id: uuid.UUID) -> TestClock:
    with psycopg_transaction(engine) as connection:
        row = store.get_test_clock(connection, tenant_id, test_clock_id)
    if row is None:
        raise Rejected.because("test_clock_not_found", "no such test clock", "id")
    return row


def list_test_clocks(engine: Engine, tenant_id: uuid.UUID, page: PageRequest | None = None) -> Page[TestClock]:
    with psycopg_transaction(engine) as connection:
        return store.list_test_clocks(connection, tenant_id, page or PageRequest())
