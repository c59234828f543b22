"""The billing run: bring each customer's draft invoice up to what is due by the customer's clock.

Per customer, in one database transaction under the customer's lock:

    gather   the customer's clock (a test clock's time, or the system's), every subscription's
             billing events through it, usage readings from the event store, the lines already on
             finalized invoices, tax rates, the customer's balance (`_invoicing.gather`)
    decide   `propose(context)`: what should have been billed, less what was
    apply    create, refresh or delete the customer's draft (`_invoicing.apply_proposal`), and note
             when something can fall due next

Running it again changes nothing (the proposal equals the draft); two runs for one customer
serialize on the lock, and the UNIQUE constraint on line key and sequence stops a second bill even
if they did not. `run_billing` finds the customers with something possibly due (never billed, a
subscription written since the last run, or a billing event due by their clock) and bills each
one on its own: one customer's refusal (say, a usage price whose meter is gone) is reported and
does not stop the others. It is the test clock advance hook `billing.run_due`, the worker's
scheduled job and `tally invoice run`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import invoices as store
from tally.adapters.postgres.connections import psycopg_transaction, run_in_transaction
from tally.app._invoicing import bill_locked
from tally.app.customer_clock import clock_for_customer
from tally.app.event_store import EventStore, open_event_store
from tally.app.test_clock_hooks import ClockAdvance, register_advance_hook
from tally.core.rejections import Rejected, Rejection

HOOK_NAME = "billing.run_due"
EXPIRY_HOOK_NAME = "credits.expire_due"
# Customers billed per call of `run_billing`; the scheduled job runs again for the rest.
CUSTOMERS_PER_RUN_MAX = 10_000

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CustomerRun:
    tenant_id: uuid.UUID
    customer_id: uuid.UUID
    invoice_id: uuid.UUID | None  # the customer's draft after the run
    created: bool
    changed: bool
    lines: int
    rejection: Rejection | None = None


@dataclass(frozen=True, slots=True)
class BillingRun:
    customers: tuple[CustomerRun, ...]

    @property
    def changed(self) -> int:
        return sum(1 for run in self.customers if run.changed)

    @property
    def refused(self) -> tuple[CustomerRun, ...]:
        return tuple(run for run in self.customers if run.rejection is not None)


def bill_customer(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    *,
    event_store: EventStore | None = None,
) -> CustomerRun:
    """Bill one customer through its clock's now. Raises `Rejected` for expected refusals."""
    usage = event_store or open_event_store(engine)

    def work(connection: psycopg.Connection[Any]) -> CustomerRun:
        store.lock_customer(connection, tenant_id, customer_id)
        through = clock_for_customer(connection, tenant_id, customer_id, system=clock).now()
        billed = bill_locked(connection, usage, tenant_id, customer_id, through)
        if billed is None:
            return CustomerRun(tenant_id, customer_id, None, created=False, changed=False, lines=0)
        _, applied = billed
        return CustomerRun(
            tenant_id,
            customer_id,
            applied.invoice_id,
            created=applied.created,
            changed=applied.changed,
            lines=applied.lines,
        )

    return run_in_transaction(engine, work)


def run_billing(
    engine: Engine,
    clock: Clock,
    *,
    tenant_id: uuid.UUID | None = None,
    customer_ids: tuple[uuid.UUID, ...] | None = None,
    event_store: EventStore | None = None,
) -> BillingRun:
    """Bill the given customers of `tenant_id`, or every customer with something possibly due (of
    one tenant, or of all tenants when `tenant_id` is None)."""
    usage = event_store or open_event_store(engine)
    if customer_ids is not None:
        if tenant_id is None:
            raise ValueError("customers are named within a tenant")
        pairs = [(tenant_id, customer_id) for customer_id in customer_ids]
    else:
        with psycopg_transaction(engine) as connection:
            pairs = store.customers_due(connection, tenant_id, clock.now(), CUSTOMERS_PER_RUN_MAX)
    runs: list[CustomerRun] = []
    for pair_tenant, customer_id in pairs:
        try:
            runs.append(bill_customer(engine, clock, pair_tenant, customer_id, event_store=usage))
        except Rejected as rejected:
            logger.warning(
                "billing run refused for a customer",
                extra={"tenant_id": str(pair_tenant), "customer_id": str(customer_id), "code": rejected.rejection.code},
            )
            runs.append(
                CustomerRun(
                    pair_tenant, customer_id, None, created=False, changed=False, lines=0, rejection=rejected.rejection
                )
            )
    return BillingRun(tuple(runs))


def _on_advance(engine: Engine, advance: ClockAdvance) -> None:
    if advance.customer_ids:
        result = run_billing(engine, advance.clock, tenant_id=advance.tenant_id, customer_ids=advance.customer_ids)
        if result.refused:
            # The advance is resumed (hooks run again) once the cause is fixed; the refusal says why.
            first = result.refused[0].rejection
            raise Rejected(first) if first is not None else RuntimeError("billing run refused")


def _on_advance_expire(engine: Engine, advance: ClockAdvance) -> None:
    from tally.app.expire_credit_grants import expire_credit_grants

    if advance.customer_ids:
        result = expire_credit_grants(
            engine, advance.clock, tenant_id=advance.tenant_id, customer_ids=advance.customer_ids
        )
        refused = [item.rejection for item in result.customers if item.rejection is not None]
        if refused:
            raise Rejected(refused[0])


def register_billing_hooks() -> None:
    """Registered after the subscriptions' hook, so billing sees subscriptions brought up to date;
    credit expiry after billing, so the draft billed through the new time is what it refreshes."""
    register_advance_hook(HOOK_NAME, _on_advance)
    register_advance_hook(EXPIRY_HOOK_NAME, _on_advance_expire)
