"""Finalize the drafts whose grace period has run out, by each customer's clock.

A draft stays a draft for a grace period after it closes (its earliest line fell due: the end of
the usage period, the start of the fee period), so that usage events arriving late — after the
period ended but within the grace period — are on the invoice rather than on a correction later.
Once the grace period has passed, per customer:

    gather   the drafts due (`due_drafts.drafts_due`: closing moment + grace ≤ the customer's now,
             test clocks included)
    refresh  the billing run for the customer (`bill_customer`), in its own transaction under the
             customer's lock, so late events that arrived during the grace period are on the draft;
             a draft the refresh deleted (nothing due any more) is left alone
    decide   the refreshed draft is still due (a backdated change can move its closing moment later)
    apply    `finalize_invoice`: the gapless number, the dates and the postings decided with the
             draft, in one transaction under the same lock

Exactly once: finalizing refuses anything but a draft (`invoice_must_be_draft`), under the
customer's lock and the invoice's row lock, and its ledger postings are keyed by the invoice. Two
runs racing for one draft both refresh; one finalizes, and the other's refusal is the answer
"finalized by another run", not a failure. A customer the billing run or the finalizing refuses is
reported with its code and does not stop the others.

It is the worker's scheduled job `tally.invoice_finalization`, the test clock advance hook
`invoices.finalize_due` (after the billing run's and the credit expiry's) and
`tally invoice finalize-due`.
"""

from __future__ import annotations

import enum
import functools
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import due_drafts
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.customer_clock import clock_for_customer
from tally.app.event_store import EventStore, open_event_store
from tally.app.finalize_invoice import finalize_invoice
from tally.app.run_billing import bill_customer
from tally.app.test_clock_hooks import AdvanceHook, ClockAdvance, register_advance_hook
from tally.core.rejections import Rejected, Rejection

HOOK_NAME = "invoices.finalize_due"
# Customers handled per call; the scheduled job runs again for the rest.
CUSTOMERS_PER_RUN_MAX = 10_000
# The longest grace period accepted: past a month, a monthly customer's next period would fold into
# the same invoice. The setting has the same bound.
GRACE_PERIOD_MAX = timedelta(days=30)

logger = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    """What happened to one customer's due draft, a closed list."""

    FINALIZED = "finalized"
    # Another run (a concurrent job, a person) finalized it between our gather and our finalize.
    FINALIZED_BY_ANOTHER_RUN = "finalized_by_another_run"
    # The refresh found nothing due any more (a backdated cancel, say) and deleted the draft.
    NO_DRAFT_AFTER_REFRESH = "no_draft_after_refresh"
    # The refresh moved the draft's closing moment later than the grace period allows yet.
    NOT_DUE_AFTER_REFRESH = "not_due_after_refresh"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class CustomerFinalization:
    tenant_id: uuid.UUID
    customer_id: uuid.UUID
    outcome: Outcome
    invoice_id: uuid.UUID | None = None
    number: str | None = None
    rejection: Rejection | None = None


@dataclass(frozen=True, slots=True)
class FinalizationRun:
    customers: tuple[CustomerFinalization, ...]

    @property
    def finalized(self) -> tuple[CustomerFinalization, ...]:
        return tuple(item for item in self.customers if item.outcome is Outcome.FINALIZED)

    @property
    def refused(self) -> tuple[CustomerFinalization, ...]:
        return tuple(item for item in self.customers if item.outcome is Outcome.REFUSED)


def grace_period_of_hours(hours: int) -> timedelta:
    grace_period = timedelta(hours=hours)
    _check_grace_period(grace_period)
    return grace_period


def finalize_due_invoices(
    engine: Engine,
    clock: Clock,
    *,
    grace_period: timedelta,
    tenant_id: uuid.UUID | None = None,
    customer_ids: tuple[uuid.UUID, ...] | None = None,
    event_store: EventStore | None = None,
) -> FinalizationRun:
    """Refresh and finalize every draft whose grace period has passed by its customer's clock (of one
    tenant, or of all tenants when `tenant_id` is None; only the given customers, if named)."""
    _check_grace_period(grace_period)
    if customer_ids is not None and tenant_id is None:
        raise ValueError("customers are named within a tenant")
    usage = event_store or open_event_store(engine)
    with psycopg_transaction(engine) as connection:
        found = due_drafts.drafts_due(
            connection,
            tenant_id=tenant_id,
            customer_ids=customer_ids,
            now=clock.now(),
            grace_period=grace_period,
            limit=CUSTOMERS_PER_RUN_MAX,
        )
    # The billing run keeps a customer's drafts (the regular one and the extra invoice of late usage,
    # in the customer's currency) together: refresh each customer once.
    customers = list(dict.fromkeys((draft.tenant_id, draft.customer_id) for draft in found))
    results: list[CustomerFinalization] = []
    for pair_tenant, customer_id in customers:
        try:
            found_results = _finalize_customer(
                engine, clock, pair_tenant, customer_id, grace_period=grace_period, usage=usage
            )
        except Rejected as rejected:
            logger.warning(
                "finalization refused for a customer",
                extra={"tenant_id": str(pair_tenant), "customer_id": str(customer_id), "code": rejected.rejection.code},
            )
            found_results = [
                CustomerFinalization(pair_tenant, customer_id, Outcome.REFUSED, rejection=rejected.rejection)
            ]
        results.extend(found_results)
    return FinalizationRun(tuple(results))


def _finalize_customer(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    *,
    grace_period: timedelta,
    usage: EventStore,
) -> list[CustomerFinalization]:
    """One result per draft the refresh left: the regular one, then the extra invoice of late usage
    (`separate` policy), each finalized once due."""
    refreshed = bill_customer(engine, clock, tenant_id, customer_id, event_store=usage)
    drafts = [invoice_id for invoice_id in (refreshed.invoice_id, refreshed.late_invoice_id) if invoice_id is not None]
    if not drafts:
        return [CustomerFinalization(tenant_id, customer_id, Outcome.NO_DRAFT_AFTER_REFRESH)]
    return [_finalize_draft(engine, clock, tenant_id, customer_id, invoice_id, grace_period) for invoice_id in drafts]


def _finalize_draft(  # noqa: PLR0917 - whose draft, then the grace period
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    invoice_id: uuid.UUID,
    grace_period: timedelta,
) -> CustomerFinalization:
    with psycopg_transaction(engine) as connection:
        closing_at = due_drafts.closing_moment(connection, invoice_id)
        now = clock_for_customer(connection, tenant_id, customer_id, system=clock).now()
    if not _is_due(closing_at, now, grace_period):
        return CustomerFinalization(tenant_id, customer_id, Outcome.NOT_DUE_AFTER_REFRESH, invoice_id)
    try:
        invoice = finalize_invoice(engine, clock, tenant_id, invoice_id)
    except Rejected as rejected:
        # Another run refreshed and finalized this draft after our refresh: it is done, once.
        if rejected.rejection.code == "invoice_must_be_draft":
            return CustomerFinalization(tenant_id, customer_id, Outcome.FINALIZED_BY_ANOTHER_RUN, invoice_id)
        raise
    return CustomerFinalization(tenant_id, customer_id, Outcome.FINALIZED, invoice_id, invoice.number)


def _is_due(closing_at: datetime | None, now: datetime, grace_period: timedelta) -> bool:
    return closing_at is not None and closing_at + grace_period <= now


def _check_grace_period(grace_period: timedelta) -> None:
    if not timedelta(0) <= grace_period <= GRACE_PERIOD_MAX:
        raise ValueError(f"a grace period is 0 to {GRACE_PERIOD_MAX}, not {grace_period}")


# ----- test clock advances ----------------------------------------------------------------------------


@functools.cache
def _advance_hook(grace_period: timedelta) -> AdvanceHook:
    """One hook per grace period, the same object each time, so registering again changes nothing."""

    def on_advance(engine: Engine, advance: ClockAdvance) -> None:
        if not advance.customer_ids:
            return
        result = finalize_due_invoices(
            engine,
            advance.clock,
            grace_period=grace_period,
            tenant_id=advance.tenant_id,
            customer_ids=advance.customer_ids,
        )
        refused = [item.rejection for item in result.refused if item.rejection is not None]
        if refused:
            # Every other customer is finalized; the advance is resumed (hooks run again, finding
            # those done) once the cause is fixed, and the refusal says why.
            raise Rejected(refused[0])

    return on_advance


def register_finalization_hook(grace_period: timedelta) -> None:
    """Register after the billing run's hooks (and the credit expiry's), so what is finalized is the
    draft brought up to the new time. The hook registry is per process: one grace period per process."""
    _check_grace_period(grace_period)
    register_advance_hook(HOOK_NAME, _advance_hook(grace_period))
