"""Delete a test clock that no customer lives on.

A clock with customers is refused `test_clock_has_customers` (409): customers are never deleted
along with a clock, because their usage events, ledger accounts and (later) invoices name them.
An advancing clock is refused `test_clock_advance_in_progress`.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.postgres import customers as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.core.rejections import Rejected

TestClock = store.TestClockRow


def delete_test_clock(engine: Engine, tenant_id: uuid.UUID, test_clock_id: uuid.UUID) -> TestClock:
    """Deletes the clock; returns it as it was."""

    def work(connection: psycopg.Connection[Any]) -> TestClock:
        row = store.get_test_clock(connection, tenant_id, test_clock_id, for_update=True)
        if row is None:
            raise Rejected.because("test_clock_not_found", "no such test clock", "id")
        if row.status == store.ADVANCING:
            raise Rejected.because(
                "test_clock_advance_in_progress", "the clock is advancing; delete it once it is ready", "id"
            )
        count = store.count_customers_on_clock(connection, row.id)
        if count:
            raise Rejected.because(
                "test_clock_has_customers", f"{count} customers live on this clock; it cannot be deleted", "id"
            )
        store.delete_test_clock(connection, row.id)
        return row

    return run_in_transaction(engine, work)
