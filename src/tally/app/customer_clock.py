"""The clock seam: what time it is for a customer.

A customer created on a test clock lives at that clock's frozen time; every other customer lives at
the system clock's time. Every time-dependent path that acts for one customer (billing runs,
subscription transitions, credit expiry) asks here instead of reading a clock of its own, which is
what lets a test clock move a customer's whole world forward:

    clock = clock_for_customer(engine, tenant_id, customer_id, system=tally.clock)
    as_of = clock.now()

The answer is a snapshot: a `FixedClock` at the frozen time read now. During an advance the clock
already reads the new time, so advance hooks that call this see the time they are advancing to.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock, FixedClock, SystemClock
from tally.adapters.postgres import customers as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.core.rejections import Rejected


def clock_for_customer(
    source: Engine | psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    *,
    system: Clock | None = None,
) -> Clock:
    """The customer's test clock, frozen at its time, or `system` (default: the real clock).

    `source` is an engine (a short read of its own) or a connection inside the caller's transaction.
    An unknown customer (or another tenant's) is rejected `customer_not_found`."""
    if isinstance(source, psycopg.Connection):
        exists, frozen_time = store.frozen_time_of_customer(source, tenant_id, customer_id)
    else:
        with psycopg_transaction(source) as connection:
            exists, frozen_time = store.frozen_time_of_customer(connection, tenant_id, customer_id)
    if not exists:
        raise Rejected.because("customer_not_found", "no such customer", "customer")
    if frozen_time is not None:
        return FixedClock(frozen_time)
    return system if system is not None else SystemClock()
