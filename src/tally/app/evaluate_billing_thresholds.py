"""Threshold billing: invoice a customer at once when a subscription's usage so far passes its
threshold, then let the period's invoice bill the rest.

Per customer with a threshold in force, in one transaction under the customer's lock (the billing
run's and every lifecycle step's):

    gather   the customer's context through its clock's now exactly as the upcoming invoice gathers
             it (`_invoicing.gather(..., preview=True)`: the billing run's code, with progressive
             readings of the usage periods under way), and the thresholds in force of its
             subscriptions
    decide   `decide_threshold_invoice`: per subscription, the usage lines of its open periods
             (with caps and discounts) net of what earlier threshold invoices of those periods
             carry; where that reaches the threshold, those lines are the threshold invoice
    apply    the invoice written (`billing_reason = threshold`) and finalized — number, dates,
             ledger postings — in the same transaction; then the customer's draft is brought up to
             date by the billing run's own step (`bill_locked`), since what is billed changed

Exactly once: under the lock, a second evaluation sees the first one's lines as billed and finds
nothing accrued; without it, the UNIQUE (line key, sequence) constraint refuses the second invoice's
lines and its transaction rolls back whole (retried from the gather, where it finds nothing).

The lines keep their period's keys and are marked provisional, so the period's closing reading
re-rates the whole period (tiers over the whole period) and bills only the rest; ingest does not
treat the period as closed (`invoices.close_usage_through` skips provisional lines).

It is the worker's scheduled job `tally.billing_threshold_evaluation`, the test clock advance hook
`billing.thresholds` (after the billing run's), and `tally invoice evaluate-thresholds`. `tally invoice
run` is unchanged: the period's billing never needs to know a threshold exists.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id, new_ids
from tally.adapters.postgres import billing_batches as batches
from tally.adapters.postgres import billing_thresholds as threshold_store
from tally.adapters.postgres import customers as customer_store
from tally.adapters.postgres import invoices as store
from tally.adapters.postgres import subscriptions as subscription_store
from tally.adapters.postgres.connections import RetryRequested, psycopg_transaction, run_in_transaction
from tally.app._invoicing import Settling, bill_locked, customer_unit, gather, invoice_fields
from tally.app.customer_clock import clock_for_customer
from tally.app.event_store import EventStore, open_event_store
from tally.app.finalize_invoice import finalize_locked
from tally.app.test_clock_hooks import ClockAdvance, register_advance_hook
from tally.core.invoicing import BillingThreshold, ThresholdAccrual, decide_threshold_invoice
from tally.core.rejections import Rejected, Rejection

HOOK_NAME = "billing.thresholds"
# Customers evaluated per call; the scheduled job runs again for the rest.
CUSTOMERS_PER_RUN_MAX = 10_000
# Customers read per page of the walk.
_PAGE_SIZE = 500

logger = logging.getLogger(__name__)
Connection = psycopg.Connection[Any]


class Outcome(enum.StrEnum):
    """What one evaluation of one customer did, a closed list."""

    INVOICED = "invoiced"
    UNDER_THRESHOLD = "under_threshold"
    # No threshold in force on any of its subscriptions (turned off since it was listed), or no
    # currency to bill in.
    NO_THRESHOLD = "no_threshold"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class CustomerEvaluation:
    tenant_id: uuid.UUID
    customer_id: uuid.UUID
    outcome: Outcome
    accruals: tuple[ThresholdAccrual, ...] = ()
    invoice_id: uuid.UUID | None = None
    number: str | None = None
    amount_due_minor: int | None = None
    rejection: Rejection | None = None


@dataclass(frozen=True, slots=True)
class EvaluationRun:
    customers: tuple[CustomerEvaluation, ...]

    @property
    def invoiced(self) -> tuple[CustomerEvaluation, ...]:
        return tuple(item for item in self.customers if item.outcome is Outcome.INVOICED)

    @property
    def refused(self) -> tuple[CustomerEvaluation, ...]:
        return tuple(item for item in self.customers if item.outcome is Outcome.REFUSED)


def evaluate_billing_thresholds(
    engine: Engine,
    clock: Clock,
    *,
    tenant_id: uuid.UUID | None = None,
    customer_ids: tuple[uuid.UUID, ...] | None = None,
    event_store: EventStore | None = None,
) -> EvaluationRun:
    """Evaluate every customer with a threshold in force (of one tenant, or of all tenants when
    `tenant_id` is None; only the given customers, if named), each in its own transaction. A
    customer's refusal is reported with its code and does not stop the others."""
    if customer_ids is not None and tenant_id is None:
        raise ValueError("customers are named within a tenant")
    usage = event_store or open_event_store(engine)
    pairs: Iterator[tuple[uuid.UUID, uuid.UUID]]
    if customer_ids is not None:
        pairs = ((tenant_id, customer_id) for customer_id in dict.fromkeys(customer_ids))  # type: ignore[misc]
    else:
        pairs = _customers_with_thresholds(engine, tenant_id)
    results: list[CustomerEvaluation] = []
    for pair_tenant, customer_id in pairs:
        try:
            result = evaluate_customer(engine, clock, pair_tenant, customer_id, event_store=usage)
        except Rejected as rejected:
            logger.warning(
                "threshold evaluation refused for a customer",
                extra={"tenant_id": str(pair_tenant), "customer_id": str(customer_id), "code": rejected.rejection.code},
            )
            result = CustomerEvaluation(pair_tenant, customer_id, Outcome.REFUSED, rejection=rejected.rejection)
        results.append(result)
    return EvaluationRun(tuple(results))


def _customers_with_thresholds(engine: Engine, tenant_id: uuid.UUID | None) -> Iterator[tuple[uuid.UUID, uuid.UUID]]:
    after: tuple[uuid.UUID, uuid.UUID] | None = None
    seen = 0
    while seen < CUSTOMERS_PER_RUN_MAX:
        with psycopg_transaction(engine) as connection:
            page = threshold_store.customers_with_thresholds_after(
                connection, tenant_id, after, min(_PAGE_SIZE, CUSTOMERS_PER_RUN_MAX - seen)
            )
        if not page:
            return
        yield from page
        seen += len(page)
        after = page[-1]


def evaluate_customer(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    *,
    event_store: EventStore | None = None,
) -> CustomerEvaluation:
    """Evaluate one customer's thresholds through its clock's now, and issue the threshold invoice
    it calls for, if any. Raises `Rejected` for expected refusals (nothing is written)."""
    usage = event_store or open_event_store(engine)

    def work(connection: Connection) -> CustomerEvaluation:
        store.lock_customer(connection, tenant_id, customer_id)
        now = clock_for_customer(connection, tenant_id, customer_id, system=clock).now()
        return _evaluate_locked(engine, connection, clock, usage, tenant_id, customer_id, now)

    return run_in_transaction(engine, work)


def _evaluate_locked(  # noqa: PLR0917 - one transaction's context, spelled out
    engine: Engine,
    connection: Connection,
    clock: Clock,
    usage: EventStore,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    now: datetime,
) -> CustomerEvaluation:
    # The thresholds first: a customer without one is not gathered at all (nor refused for what
    # the billing run would refuse it for).
    subscription_ids = subscription_store.subscription_ids_of_customers(connection, tenant_id, [customer_id])
    facts = [
        fact
        for fact in threshold_store.in_force(connection, tenant_id, subscription_ids).values()
        if fact.amount_minor is not None
    ]
    if not facts:
        return CustomerEvaluation(tenant_id, customer_id, Outcome.NO_THRESHOLD)
    gathered = gather(connection, usage, tenant_id, customer_id, now, preview=True)
    if gathered is None:
        return CustomerEvaluation(tenant_id, customer_id, Outcome.NO_THRESHOLD)
    context = gathered.context
    thresholds = [
        BillingThreshold(
            subscription_id=str(fact.subscription_id),
            amount_minor=fact.amount_minor,
            currency=context.currency
            if fact.currency == context.currency.code
            else customer_unit(connection, tenant_id, fact.currency),
        )
        for fact in facts
        if fact.amount_minor is not None
    ]
    decision = decide_threshold_invoice(context, thresholds)
    proposal = decision.proposal
    if proposal is None:
        return CustomerEvaluation(tenant_id, customer_id, Outcome.UNDER_THRESHOLD, decision.accruals)
    invoice_id = new_id()
    currency = proposal.currency.code
    store.insert_draft(
        connection,
        invoice_id=invoice_id,
        tenant_id=tenant_id,
        customer_id=customer_id,
        currency=currency,
        fields=invoice_fields(invoice_id, proposal),
        now=now,
        billing_reason="threshold",
    )
    try:
        batches.insert_lines(
            connection,
            tenant_id,
            [
                batches.NewLines(
                    invoice_id=invoice_id,
                    customer_id=customer_id,
                    currency=currency,
                    lines=proposal.lines,
                    line_ids=new_ids(len(proposal.lines)),
                    now=now,
                )
            ],
        )
    except psycopg.errors.UniqueViolation as violation:
        # A line key and sequence billed meanwhile: run again from the gather, which sees it.
        raise RetryRequested from violation
    invoice = store.get_invoice(connection, tenant_id, invoice_id, for_update=True)
    customer = customer_store.get_customer(connection, tenant_id, customer_id)
    if invoice is None or customer is None:  # pragma: no cover - both written or read above
        raise RuntimeError("threshold invoice or customer vanished")
    finalize_locked(Settling(engine, connection, clock, tenant_id, invoice, customer, proposal.currency, now))
    # What is billed changed under the customer's draft: bring it up to date in the same transaction.
    bill_locked(connection, usage, tenant_id, customer_id, now, engine=engine, clock=clock)
    finalized = store.get_invoice(connection, tenant_id, invoice_id)
    if finalized is None:  # pragma: no cover - finalized invoices are never deleted
        raise RuntimeError("threshold invoice vanished")
    logger.info(
        "threshold invoice issued",
        extra={"tenant_id": str(tenant_id), "customer_id": str(customer_id), "invoice_id": str(invoice_id)},
    )
    return CustomerEvaluation(
        tenant_id,
        customer_id,
        Outcome.INVOICED,
        decision.accruals,
        invoice_id=invoice_id,
        number=finalized.number,
        amount_due_minor=finalized.amount_due_minor,
    )


# ----- test clock advances ----------------------------------------------------------------------------


def _on_advance(engine: Engine, advance: ClockAdvance) -> None:
    if not advance.customer_ids:
        return
    result = evaluate_billing_thresholds(
        engine, advance.clock, tenant_id=advance.tenant_id, customer_ids=advance.customer_ids
    )
    refused = [item.rejection for item in result.refused if item.rejection is not None]
    if refused:
        # The others are evaluated; the advance is resumed (hooks run again) once the cause is fixed.
        raise Rejected(refused[0])


def register_threshold_hook() -> None:
    """Register after the billing run's hooks: the draft it refreshes is the one billed through the
    new time, and what it finds accrued is net of everything billed before."""
    register_advance_hook(HOOK_NAME, _on_advance)
