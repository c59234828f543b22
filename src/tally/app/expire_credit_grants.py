"""Expire credit grants: what is left of a grant at its expiry leaves the customer's credit.

For each customer holding a grant expired by its clock (test clocks included) with something left,
in one transaction under the customer's invoicing lock:

    gather   the customer's grants with a balance (the balance of each grant's ledger account)
    decide   which have expired by the customer's now, and what their remainder is worth
    apply    one `credits_expired` posting per grant (breakage revenue for prepaid credits, the
             promotion expense given back for promotional ones), then the customer's draft
             refreshed so it no longer counts on them

Exactly once: a grant expired is a grant with a zero balance, so a second run finds nothing; the
posting's key names the grant and how many expiries it had before, so a replay of the same state
is the same posting. It runs as the worker's scheduled job `tally.credit_expiry` and as the test
clock advance hook `credits.expire_due` (after the billing run's).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import invoicing_terms as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app._invoicing_terms import Locked, event_store_refresh, expire_due, locked
from tally.app.event_store import EventStore, open_event_store
from tally.core.rejections import Rejected, Rejection

# Customers handled per call; the scheduled job runs again for the rest.
CUSTOMERS_PER_RUN_MAX = 10_000

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CustomerExpiry:
    tenant_id: uuid.UUID
    customer_id: uuid.UUID
    grants_expired: int
    rejection: Rejection | None = None


@dataclass(frozen=True, slots=True)
class ExpiryRun:
    customers: tuple[CustomerExpiry, ...]

    @property
    def grants_expired(self) -> int:
        return sum(item.grants_expired for item in self.customers)


def expire_credit_grants(
    engine: Engine,
    clock: Clock,
    *,
    tenant_id: uuid.UUID | None = None,
    customer_ids: tuple[uuid.UUID, ...] | None = None,
    event_store: EventStore | None = None,
) -> ExpiryRun:
    """Expire the due grants of the given customers of `tenant_id`, or of every customer holding one."""
    refresh = event_store_refresh(event_store or open_event_store(engine), engine, clock)
    if customer_ids is not None:
        if tenant_id is None:
            raise ValueError("customers are named within a tenant")
        pairs = [(tenant_id, customer_id) for customer_id in customer_ids]
    else:
        with psycopg_transaction(engine) as connection:
            pairs = store.customers_with_expired_grants(connection, tenant_id, clock.now(), CUSTOMERS_PER_RUN_MAX)
    results: list[CustomerExpiry] = []
    for pair_tenant, customer_id in pairs:

        def act(here: Locked) -> int:
            return len(expire_due(here, refresh))

        try:
            count = locked(engine, clock, pair_tenant, customer_id, act)
        except Rejected as rejected:
            logger.warning(
                "credit expiry refused for a customer",
                extra={"tenant_id": str(pair_tenant), "customer_id": str(customer_id), "code": rejected.rejection.code},
            )
            results.append(CustomerExpiry(pair_tenant, customer_id, 0, rejected.rejection))
            continue
        results.append(CustomerExpiry(pair_tenant, customer_id, count))
    return ExpiryRun(tuple(results))
