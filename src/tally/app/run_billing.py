"""The billing run: bring each customer's draft invoice up to what is due by the customer's clock.

Per customer, under the customer's lock:

    gather   the customer's clock (a test clock's time, or the system's), every subscription's
             billing events through it, usage readings from the event store, the lines already on
             finalized invoices, tax rates, the customer's balance (`_invoicing.prepare`, then
             `Prepared.complete` with the usage)
    decide   `propose(context)`: what should have been billed, less what was
    apply    create, refresh or delete the customer's draft (`_invoicing.decide_draft`, then
             `write_drafts`), and note when something can fall due next

`bill_customer` does this for one customer in its own transaction (the API, the CLI, the test clock
hooks). `run_billing` does it for customers in chunks (`CUSTOMERS_PER_CHUNK` at a time, walked in
id order, so memory stays bounded whatever the number of customers): one transaction per chunk
holding every customer's lock (taken in id order, one statement), each kind of row read for the
whole chunk with one statement (`ChunkReads`), usage asked of the event store with one statement
per meter, each customer's proposal computed on its own by the same pure core, and the drafts of
the chunk written with COPY. The code that decides is the same in both: only how rows travel
differs.

Chunks are billed `jobs` at a time, each in a worker process of its own with its own engine (the
proposal is pure Python, so one process uses one core): the run pages through the customers due
and hands each page to the pool, at most `CHUNKS_IN_FLIGHT_PER_JOB` pages per worker ahead of the
results, so memory stays bounded. Chunks hold disjoint customers' locks, so they never wait for one
another. A run of one chunk (the test clock hooks, a small tenant) stays in the calling process.

Running it again changes nothing (the proposal equals the draft); two runs for one customer
serialize on the lock, and the UNIQUE constraint on line key and sequence stops a second bill even
if they did not. One customer's refusal (say, a usage price whose meter is gone) is reported and
leaves that customer's draft as it was, without stopping the others; a chunk whose writes fail (a
constraint, a deadlock) is rolled back whole and billed again one customer at a time. It is the
test clock advance hook `billing.run_due`, the worker's scheduled job and `tally invoice run`.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import pickle
import uuid
from collections import defaultdict, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from multiprocessing import util as multiprocessing_util
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.gc_tuning import collector_paused, tune_for_bulk_work
from tally.adapters.postgres import billing_batches as batches
from tally.adapters.postgres import customers as customer_store
from tally.adapters.postgres import invoices as store
from tally.adapters.postgres import late_usage as late_store
from tally.adapters.postgres import one_off_charges as charge_store
from tally.adapters.postgres import subscriptions as subscription_store
from tally.adapters.postgres.connections import RETRYABLE, RetryRequested, psycopg_transaction, run_in_transaction
from tally.adapters.postgres.database import make_engine
from tally.adapters.postgres.usage import PostgresEventStore
from tally.app._invoicing import (
    LATE_USAGE,
    PERIOD,
    Applied,
    BillingReads,
    CustomerDecision,
    LateSettled,
    Prepared,
    bill_locked,
    decide_customer,
    prepare,
    settle_late_usage,
    write_drafts,
)
from tally.app.customer_clock import clock_for_customer
from tally.app.event_store import EventStore, open_event_store
from tally.app.tenant_billing_settings import billing_settings_in
from tally.app.test_clock_hooks import ClockAdvance, register_advance_hook
from tally.core.invoicing import BilledLine
from tally.core.invoicing.context import ONE_OFF_CHARGES_MAX
from tally.core.invoicing.postings import BALANCE_ACCOUNT
from tally.core.metering.aggregation import assemble
from tally.core.metering.usage import UsageQuery, UsageResult
from tally.core.rejections import Rejected, Rejection

if TYPE_CHECKING:
    from tally.adapters.postgres import invoicing_terms as term_store
    from tally.app._invoicing_terms import Terms
    from tally.core import money
    from tally.core.invoicing import PriceRef

HOOK_NAME = "billing.run_due"
EXPIRY_HOOK_NAME = "credits.expire_due"
# Customers billed per call of `run_billing` (by default); the scheduled job runs again for the rest.
CUSTOMERS_PER_RUN_MAX = 10_000
# Customers per chunk: one transaction, holding their locks for one to two seconds. Fewer, larger
# chunks cost the database less per customer (a 2,000 chunk about a fifth less than a 1,000 one, measured).
CUSTOMERS_PER_CHUNK = 2_000
# Worker processes billing chunks at once: by default one per CPU, at most this many (PostgreSQL
# needs cores too, and each worker holds connections).
BILLING_JOBS_MAX = 8
# Chunks handed to the pool ahead of the results read back, per worker: enough to keep each one
# busy while the next page of customers is read, few enough to bound what is held in memory.
CHUNKS_IN_FLIGHT_PER_JOB = 2
# Connections each worker's engine keeps: one for its chunk, one for a chunk billed one by one.
_WORKER_POOL_SIZE = 2

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
    # Late usage (tally.core.invoicing.late_usage): the customer's extra invoice draft after the run
    # (`separate` policy), the credit notes issued, and the `late_usage` flags resolved.
    late_invoice_id: uuid.UUID | None = None
    credit_notes: tuple[uuid.UUID, ...] = ()
    flags_resolved: int = 0


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
        billed = bill_locked(connection, usage, tenant_id, customer_id, through, engine=engine, clock=clock)
        if billed is None:
            return CustomerRun(tenant_id, customer_id, None, created=False, changed=False, lines=0)
        return _customer_run(tenant_id, customer_id, billed.applied, billed.late_applied, billed.late)

    return run_in_transaction(engine, work)


def _customer_run(
    tenant_id: uuid.UUID, customer_id: uuid.UUID, applied: Applied, late_applied: Applied, late: LateSettled
) -> CustomerRun:
    return CustomerRun(
        tenant_id,
        customer_id,
        applied.invoice_id,
        created=applied.created,
        changed=applied.changed or late_applied.changed or bool(late.credit_notes) or late.flags_resolved > 0,
        lines=applied.lines,
        late_invoice_id=late_applied.invoice_id,
        credit_notes=late.credit_notes,
        flags_resolved=late.flags_resolved,
    )


def default_jobs() -> int:
    """Worker processes for a billing run: one per CPU, at most `BILLING_JOBS_MAX`."""
    return max(1, min(os.cpu_count() or 1, BILLING_JOBS_MAX))


def run_billing(
    engine: Engine,
    clock: Clock,
    *,
    tenant_id: uuid.UUID | None = None,
    customer_ids: tuple[uuid.UUID, ...] | None = None,
    event_store: EventStore | None = None,
    chunk_size: int = CUSTOMERS_PER_CHUNK,
    customers_max: int = CUSTOMERS_PER_RUN_MAX,
    jobs: int = 1,
) -> BillingRun:
    """Bill the given customers of `tenant_id`, or every customer with something possibly due (of
    one tenant, or of all tenants when `tenant_id` is None), `chunk_size` customers at a time, in
    `jobs` worker processes when there is more than one chunk (default 1: all in this process, which
    is what a server, a test-clock hook or the job runner wants; a command of its own may pass
    `default_jobs()`, one per CPU). The result lists the customers in the order their chunks were
    paged."""
    if not 1 <= chunk_size <= batches.CUSTOMERS_PER_CHUNK_MAX:
        raise ValueError(f"chunk_size must be 1 to {batches.CUSTOMERS_PER_CHUNK_MAX}, not {chunk_size}")
    if not 1 <= jobs <= BILLING_JOBS_MAX:
        raise ValueError(f"jobs must be 1 to {BILLING_JOBS_MAX}, not {jobs}")
    if customer_ids is not None:
        if tenant_id is None:
            raise ValueError("customers are named within a tenant")
        named = list(dict.fromkeys(customer_ids))
        chunks: Iterator[tuple[uuid.UUID, list[uuid.UUID]]] = (
            (tenant_id, named[low : low + chunk_size]) for low in range(0, len(named), chunk_size)
        )
        several = len(named) > chunk_size
        return _bill_chunks(engine, clock, chunks, several=several, event_store=event_store, jobs=jobs)
    # A run over every customer due: one at a time per tenant (or for all tenants), so an
    # overlapping one is told so at once instead of waiting on each customer's lock to find
    # nothing left to do.
    with batches.billing_run_lock(engine, tenant_id) as held:
        if not held:
            raise Rejected.because(
                "billing_run_in_progress",
                "a billing run over every customer due is under way"
                + (" for this tenant" if tenant_id is not None else "")
                + "; it bills what this one would: try again when it ends",
            )
        chunks = _chunks_due(engine, clock, tenant_id, chunk_size, customers_max)
        ahead = [chunk for chunk in (next(chunks, None), next(chunks, None)) if chunk is not None]
        chunks = itertools.chain(ahead, chunks)
        return _bill_chunks(engine, clock, chunks, several=len(ahead) > 1, event_store=event_store, jobs=jobs)


def _bill_chunks(
    engine: Engine,
    clock: Clock,
    chunks: Iterator[tuple[uuid.UUID, list[uuid.UUID]]],
    *,
    several: bool,
    event_store: EventStore | None,
    jobs: int,
) -> BillingRun:
    if jobs > 1 and several and _portable(clock, event_store):
        return BillingRun(tuple(_bill_in_pool(engine, clock, jobs, chunks)))
    usage = event_store or open_event_store(engine)
    runs: list[CustomerRun] = []
    for chunk_tenant, ids in chunks:
        runs.extend(_bill_chunk(engine, clock, usage, chunk_tenant, ids))
    return BillingRun(tuple(runs))


def _chunks_due(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID | None, chunk_size: int, customers_max: int
) -> Iterator[tuple[uuid.UUID, list[uuid.UUID]]]:
    """The customers with something possibly due, a page at a time, as (tenant, customers) chunks:
    at most `chunk_size` customers each and `customers_max` in all, in (tenant, id) order. A page
    is read only when the chunk before it has been taken."""
    paged = 0
    after: tuple[uuid.UUID, uuid.UUID] | None = None
    while paged < customers_max:
        with psycopg_transaction(engine) as connection:
            pairs = batches.customers_due_after(
                connection, tenant_id, clock.now(), after, min(chunk_size, customers_max - paged)
            )
        if not pairs:
            return
        after = pairs[-1]
        paged += len(pairs)
        by_tenant: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        for pair_tenant, customer_id in pairs:
            by_tenant[pair_tenant].append(customer_id)
        yield from by_tenant.items()


# ----- chunks in worker processes ------------------------------------------------------------------------


def _portable(clock: Clock, event_store: EventStore | None) -> bool:
    """Whether worker processes can bill as this process would: they open the configured event store
    on their own engine, and get a copy of the clock."""
    if event_store is not None and type(event_store) is not PostgresEventStore:
        return False
    try:
        pickle.dumps(clock)
    except (pickle.PicklingError, TypeError, AttributeError):
        return False
    return True


def _bill_in_pool(
    engine: Engine, clock: Clock, jobs: int, chunks: Iterator[tuple[uuid.UUID, list[uuid.UUID]]]
) -> list[CustomerRun]:
    """Each chunk billed by `_bill_chunk` in one of `jobs` worker processes, results in chunk order.
    Workers are forked from a fresh server process (`forkserver`), never from this one: a forked
    copy of this process's connections would talk over the same sockets as the originals."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    url = engine.url.render_as_string(hide_password=False)
    runs: list[CustomerRun] = []
    pending: deque[Future[list[CustomerRun]]] = deque()
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_start_worker, initargs=(url, clock)
    ) as pool:
        try:
            for chunk_tenant, ids in chunks:
                pending.append(pool.submit(_bill_chunk_in_worker, chunk_tenant, ids))
                while len(pending) >= jobs * CHUNKS_IN_FLIGHT_PER_JOB:
                    runs.extend(pending.popleft().result())
            while pending:
                runs.extend(pending.popleft().result())
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return runs


# One worker process's engine, clock and event store, set up once by `_start_worker`.
_worker: tuple[Engine, Clock, EventStore] | None = None


def _start_worker(url: str, clock: Clock) -> None:
    global _worker  # noqa: PLW0603 - the state of a worker process, set once when it starts
    engine = make_engine(url, pool_size=_WORKER_POOL_SIZE)
    # Worker processes end without running atexit handlers; this closes the connections first.
    multiprocessing_util.Finalize(None, engine.dispose, exitpriority=10)
    _worker = (engine, clock, open_event_store(engine))
    tune_for_bulk_work()  # what start-up built lives as long as the worker: no collection walks it again


def _bill_chunk_in_worker(tenant_id: uuid.UUID, customer_ids: list[uuid.UUID]) -> list[CustomerRun]:
    if _worker is None:  # pragma: no cover - the pool's initializer sets it
        raise RuntimeError("a billing worker that was not started")
    engine, clock, event_store = _worker
    return _bill_chunk(engine, clock, event_store, tenant_id, customer_ids)


# ----- one chunk ---------------------------------------------------------------------------------------


class ChunkReads(BillingReads):
    """`BillingReads` answered for a chunk of customers from rows read once for all of them. The
    rare rows (coupons, grants, commitments, caps, overrides, tax rates) are read one customer at a
    time, as `BillingReads` does, for the customers that have any; for the others the answer is
    known to be empty."""

    def __init__(self, connection: psycopg.Connection[Any], tenant_id: uuid.UUID, customer_ids: Sequence[uuid.UUID]):
        super().__init__(connection, tenant_id)
        self.found = batches.customers_with_clocks(connection, tenant_id, customer_ids)
        present = [customer_id for customer_id in customer_ids if customer_id in self.found]
        self._billed = batches.billed_lines_of(connection, tenant_id, present)
        self._timelines = batches.timelines_of(connection, tenant_id, present)
        self._with_terms = batches.customers_with_rows(connection, tenant_id, present)
        self._default_tax = batches.tenant_has_default_tax_rates(connection, tenant_id)
        externals = [
            (customer.external_id, customer.currency) for customer, _ in self.found.values() if customer.currency
        ]
        self._balances = batches.balances_of(connection, tenant_id, BALANCE_ACCOUNT, externals)
        self._charges = charge_store.pending_charges_of(connection, tenant_id, present, ONE_OFF_CHARGES_MAX)
        self._flags = late_store.open_flags_of(
            connection, tenant_id, [row.external_id for row, _ in self.found.values()]
        )
        catalog_ids = {
            origin.price_id
            for subscriptions in self._timelines.values()
            for _, entries in subscriptions
            for recorded in entries
            for origin in recorded.origins.values()
        } | {charge.price_id for charges in self._charges.values() for charge in charges}
        self.catalog_prices(sorted(catalog_ids))

    def customer(self, customer_id: uuid.UUID) -> customer_store.CustomerRow | None:
        found = self.found.get(customer_id)
        return None if found is None else found[0]

    def billed_lines(self, customer_id: uuid.UUID, currency: str) -> list[BilledLine]:
        return self._billed.get((customer_id, currency), [])

    def subscriptions(self, customer_id: uuid.UUID) -> list[tuple[uuid.UUID, list[subscription_store.RecordedEntry]]]:
        return self._timelines.get(customer_id, [])

    def override(
        self, customer_id: uuid.UUID, price_id: uuid.UUID, at: datetime
    ) -> subscription_store.OverrideRow | None:
        return super().override(customer_id, price_id, at) if customer_id in self._with_terms else None

    def terms(self, customer: customer_store.CustomerRow, currency: money.Unit, prices: Sequence[PriceRef]) -> Terms:
        if customer.id in self._with_terms:
            return super().terms(customer, currency, prices)
        from tally.app._invoicing_terms import Terms

        return Terms((), (), (), ())

    def tax_rates(self, customer_id: uuid.UUID, through: datetime) -> list[term_store.TaxRateRow]:
        if customer_id in self._with_terms or self._default_tax:
            return super().tax_rates(customer_id, through)
        return []

    def balance(self, external_id: str, currency: str) -> int:
        return self._balances.get((external_id, currency), 0)

    def pending_charges(self, customer_id: uuid.UUID) -> list[charge_store.ChargeRow]:
        return self._charges.get(customer_id, [])

    def late_flags(self, external_id: str) -> list[late_store.FlagRow]:
        return self._flags.get(external_id, [])


def usage_of_chunk(
    connection: psycopg.Connection[Any], event_store: EventStore, tenant_id: uuid.UUID, queries: Sequence[UsageQuery]
) -> list[UsageResult]:
    """The answers to `queries`, in order, as `event_store.usage` gives them one by one: on
    PostgreSQL, the queries of each meter version of a batched aggregation in one statement."""
    results: list[UsageResult | None] = [None] * len(queries)
    by_version: dict[int, list[int]] = defaultdict(list)
    for index, query in enumerate(queries):
        batched = query.meter.definition.aggregation.kind in batches.BATCHED_AGGREGATIONS
        if isinstance(event_store, PostgresEventStore) and batched:
            by_version[query.meter.version_id].append(index)
        else:
            results[index] = event_store.usage(tenant_id, query)
    for indexes in by_version.values():
        asked = [queries[index] for index in indexes]
        for index, cells in zip(indexes, batches.usage_totals(connection, tenant_id, asked), strict=True):
            results[index] = assemble(queries[index], cells, "rollups")
    answered = [result for result in results if result is not None]
    if len(answered) != len(queries):  # pragma: no cover - every index is answered above
        raise RuntimeError("a usage query without an answer")
    return answered


def _refused(tenant_id: uuid.UUID, customer_id: uuid.UUID, rejection: Rejection) -> CustomerRun:
    logger.warning(
        "billing run refused for a customer",
        extra={"tenant_id": str(tenant_id), "customer_id": str(customer_id), "code": rejection.code},
    )
    return CustomerRun(tenant_id, customer_id, None, created=False, changed=False, lines=0, rejection=rejection)


def _bill_chunk(
    engine: Engine, clock: Clock, event_store: EventStore, tenant_id: uuid.UUID, customer_ids: Sequence[uuid.UUID]
) -> list[CustomerRun]:
    """Bill a chunk of one tenant's customers in one transaction; if its writes fail, roll it back
    and bill each customer on its own (`bill_customer`, with its retries)."""
    ordered = sorted(customer_ids)
    try:
        # The chunk's rows and proposals stay alive until it commits: collections meanwhile would only
        # walk them again and again (a sixth of the run's Python time, measured).
        with collector_paused(), psycopg_transaction(engine) as connection:
            chunk, deferred = _bill_chunk_locked(engine, connection, clock, event_store, tenant_id, ordered)
        if not deferred:
            return chunk
        alone = {run.customer_id: run for run in _bill_one_by_one(engine, clock, event_store, tenant_id, deferred)}
        return [alone.get(run.customer_id, run) for run in chunk]
    except (*RETRYABLE, RetryRequested, errors.UniqueViolation) as failure:
        logger.warning(
            "billing chunk rolled back, billing its customers one by one",
            extra={"tenant_id": str(tenant_id), "customers": len(ordered), "error": type(failure).__name__},
        )
    return _bill_one_by_one(engine, clock, event_store, tenant_id, ordered)


def _bill_one_by_one(
    engine: Engine, clock: Clock, event_store: EventStore, tenant_id: uuid.UUID, ordered: Sequence[uuid.UUID]
) -> list[CustomerRun]:
    runs: list[CustomerRun] = []
    for customer_id in ordered:
        try:
            runs.append(bill_customer(engine, clock, tenant_id, customer_id, event_store=event_store))
        except Rejected as rejected:
            runs.append(_refused(tenant_id, customer_id, rejected.rejection))
    return runs


def _bill_chunk_locked(  # noqa: PLR0917 - the transaction's parts, then the chunk
    engine: Engine,
    connection: psycopg.Connection[Any],
    clock: Clock,
    event_store: EventStore,
    tenant_id: uuid.UUID,
    ordered: Sequence[uuid.UUID],
) -> tuple[list[CustomerRun], list[uuid.UUID]]:
    """The chunk's runs in `ordered` order, and the customers deferred to be billed on their own
    (those with late-usage credit notes to issue: their entry in the runs is a placeholder)."""
    batches.lock_customers(connection, tenant_id, ordered)
    now = clock.now()  # read once the locks are held, as `bill_customer` reads it
    reads = ChunkReads(connection, tenant_id, ordered)
    outcome: dict[uuid.UUID, CustomerRun] = {}
    prepared: list[tuple[uuid.UUID, Prepared]] = []
    for customer_id in ordered:
        found = reads.found.get(customer_id)
        frozen = None if found is None else found[1]
        try:
            ready = prepare(reads, customer_id, frozen if frozen is not None else now)
        except Rejected as rejected:
            outcome[customer_id] = _refused(tenant_id, customer_id, rejected.rejection)
            continue
        if ready is None:
            outcome[customer_id] = CustomerRun(tenant_id, customer_id, None, created=False, changed=False, lines=0)
        else:
            prepared.append((customer_id, ready))
    queries = [query for _, ready in prepared for query in ready.queries()]
    answers = usage_of_chunk(connection, event_store, tenant_id, queries)
    drafts = batches.drafts_of(connection, tenant_id, [customer_id for customer_id, _ in prepared])
    policy = billing_settings_in(connection, tenant_id).late_usage_policy
    decisions: list[CustomerDecision] = []
    recorded: list[tuple[uuid.UUID, datetime, datetime | None]] = []
    deferred: list[uuid.UUID] = []
    offset = 0
    for customer_id, ready in prepared:
        count = sum(len(need.windows) for need in ready.needs)
        mine = answers[offset : offset + count]
        offset += count
        currency = ready.currency.code
        mine_drafts = {
            billing_reason: drafts[(customer_id, currency, billing_reason)]
            for billing_reason in (PERIOD, LATE_USAGE)
            if (customer_id, currency, billing_reason) in drafts
        }
        try:
            gathered = ready.complete(mine)
            decision = decide_customer(connection, tenant_id, gathered, policy, mine_drafts)
        except Rejected as rejected:
            outcome[customer_id] = _refused(tenant_id, customer_id, rejected.rejection)
            continue
        if decision.split.credits:
            # Credit notes post to the ledger, which may refuse (a floor): billed on its own after
            # the chunk, so a refusal is this customer's alone.
            deferred.append(customer_id)
            outcome[customer_id] = CustomerRun(tenant_id, customer_id, None, created=False, changed=False, lines=0)
            continue
        decisions.append(decision)
        recorded.append((customer_id, ready.through, gathered.next_due_at))
    write_drafts(connection, tenant_id, [write for decision in decisions for write in decision.writes])
    for decision in decisions:
        # The flags read with the chunk, before its usage was measured (`Gathered.flags`).
        flags = reads.late_flags(decision.customer.external_id)
        late = settle_late_usage(engine, clock, connection, tenant_id, decision=decision, flags=flags)
        outcome[decision.customer.id] = _customer_run(
            tenant_id, decision.customer.id, decision.regular.applied, decision.late.applied, late
        )
    batches.record_customer_runs(connection, tenant_id, recorded)
    return [outcome[customer_id] for customer_id in ordered], deferred


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
