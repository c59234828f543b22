"""Create a test clock, frozen at a time of the caller's choosing (past or future).

Customers created on it live at its time (see `tally.app.customer_clock`) until it is advanced.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id
from tally.adapters.postgres import customers as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.core.customers import validate_metadata, validate_name
from tally.core.rejections import Rejected

TestClock = store.TestClockRow

TEST_CLOCKS_PER_TENANT_MAX = 100
# Simulations run in the years billing cares about; the bounds keep date arithmetic far from overflow.
FROZEN_TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
FROZEN_TIME_MAX = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class TestClockInput:
    __test__ = False  # not a pytest test class

    frozen_time: datetime
    name: str | None = None  # default: "Test clock"
    metadata: Mapping[str, str] = field(default_factory=dict)


def check_frozen_time(frozen_time: datetime) -> None:
    if frozen_time.tzinfo is None:
        raise Rejected.because("datetime_must_have_timezone", "frozen_time needs a timezone", "frozen_time")
    if not FROZEN_TIME_MIN <= frozen_time < FROZEN_TIME_MAX:
        raise Rejected.because(
            "test_clock_frozen_time_out_of_range",
            f"a test clock's time is from {FROZEN_TIME_MIN.year} to {FROZEN_TIME_MAX.year}",
            "frozen_time",
        )


def create_test_clock(engine: Engine, clock: Clock, tenant_id: uuid.UUID, test_clock: TestClockInput) -> TestClock:
    name = test_clock.name if test_clock.name is not None else "Test clock"
    validate_name(name)
    check_frozen_time(test_clock.frozen_time)
    validate_metadata(test_clock.metadata)

    def work(connection: psycopg.Connection[Any]) -> TestClock:
        store.lock_tenant_test_clocks(connection, tenant_id)
        if store.count_test_clocks(connection, tenant_id) >= TEST_CLOCKS_PER_TENANT_MAX:
            raise Rejected.because(
                "test_clocks_exceed_limit",
                f"a tenant has at most TEST_CLOCKS_PER_TENANT_MAX = {TEST_CLOCKS_PER_TENANT_MAX} test clocks; "
                "delete unused ones",
            )
        return store.insert_test_clock(
            connection,
            test_clock_id=new_id(),
            tenant_id=tenant_id,
            name=name,
            frozen_time=test_clock.frozen_time.astimezone(UTC),
            metadata=test_clock.metadata,
            now=clock.now(),
        )

    return run_in_transaction(engine, work)
