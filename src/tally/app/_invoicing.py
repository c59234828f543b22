"""What the billing run, the upcoming invoice and the invoice lifecycle share.

    gather   one customer's `InvoiceContext` through a moment: every subscription's billing events and
             prices, usage readings from the event store, the lines already billed, coupon
             redemptions, credit grants with what is left of them (ledger balances), commitments,
             caps, tax rates in force, the customer's balance from the ledger
    bill     gather, propose and apply for one customer whose lock the caller holds
    apply    a proposal onto the customer's draft: created, refreshed (lines replaced), or deleted
             when nothing is due any more; an identical proposal writes nothing
    settle   an invoice read back as the core's `InvoiceState`, and postings written to the ledger
             inside the caller's transaction

The customer is named in the core and the ledger by its external id (the id its usage events carry).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import psycopg
from psycopg import errors
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id, new_ids
from tally.adapters.postgres import customers as customer_store
from tally.adapters.postgres import invoices as store
from tally.adapters.postgres import invoicing_terms as term_store
from tally.adapters.postgres import meters as meter_store
from tally.adapters.postgres import subscriptions as subscription_store
from tally.adapters.postgres.connections import RetryRequested, run_in_transaction
from tally.app._ledger_write import write_in
from tally.app._subscription_write import origins_of, timeline_of
from tally.app.customer_clock import clock_for_customer
from tally.app.event_store import EventStore
from tally.app.ledger_accounts import ensure_accounts
from tally.core import money
from tally.core.invoicing import (
    CustomerTaxRates,
    InvoiceContext,
    InvoiceState,
    InvoiceStatus,
    LineKind,
    PriceRef,
    Proposal,
    SubscriptionBilling,
    TaxRate,
    TaxRateTable,
    UsageReading,
    draft_invoice,
    invoice_postings,
    propose,
)
from tally.core.invoicing.postings import BALANCE_ACCOUNT
from tally.core.ledger.model import Entry, TransactionKind, TransactionSpec
from tally.core.ledger.templates import Posting
from tally.core.metering.meters import AggregationKind, MeterVersion
from tally.core.metering.usage import Granularity, UsageQuery
from tally.core.periods import Period
from tally.core.rating import Price, Quantity, price_from_document
from tally.core.rejections import Rejected
from tally.core.subscriptions import BillingEventKind, BillingEvents, ItemKind, billing_events

Connection = psycopg.Connection[Any]
T = TypeVar("T")

# Usage periods billed before are measured again for this long after they end, so late events
# (accepted within the ingest horizon) land as correction lines on the next invoice.
LATE_USAGE_LOOKBACK = timedelta(days=45)
# Aggregations whose value over several windows is the sum of the windows' values.
_ADDITIVE = frozenset({AggregationKind.COUNT, AggregationKind.SUM})


@dataclass(frozen=True, slots=True)
class Gathered:
    customer: customer_store.CustomerRow
    context: InvoiceContext
    # The earliest moment after `through` at which a billing event of the customer can fall due.
    next_due_at: datetime | None


def customer_unit(connection: Connection, tenant_id: uuid.UUID, code: str) -> money.Unit:
    if code in money.ISO_4217_MINOR_UNITS:
        return money.currency(code)
    units = subscription_store.custom_units(connection, tenant_id)
    if code not in units:
        raise Rejected.because("unit_must_be_known", f"{code!r} is not a unit of this tenant", "currency")
    return units[code]


def gather(
    connection: Connection,
    event_store: EventStore,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    through: datetime,
    *,
    preview: bool = False,
) -> Gathered | None:
    """The customer's context through `through`; None for a customer without a currency (it has no
    subscriptions either). `preview`: also measure the usage of periods still under way, so far
    (progressive readings), as the upcoming invoice shows it."""
    customer = customer_store.get_customer(connection, tenant_id, customer_id)
    if customer is None:
        raise Rejected.because("customer_not_found", "no such customer", "customer")
    if customer.currency is None:
        return None
    currency = customer_unit(connection, tenant_id, customer.currency)
    billed = store.billed_lines(connection, tenant_id, customer_id, customer.currency)
    billed_in_full = {
        (line.key.subscription_id, line.key.price_id, line.key.service_period)
        for line in billed
        if line.key.kind is LineKind.USAGE and not line.provisional
    }
    reader = _UsageReader(connection, event_store, tenant_id, customer.external_id)
    subscriptions: list[SubscriptionBilling] = []
    readings: list[UsageReading] = []
    next_due: list[datetime] = []
    for subscription_id in subscription_store.subscription_ids_of_customers(connection, tenant_id, [customer_id]):
        entries = subscription_store.timeline_of(connection, subscription_id)
        events = billing_events(timeline_of(subscription_id, entries), through=through)
        if events.next_due_at is not None:
            next_due.append(events.next_due_at)
        prices = _price_refs(connection, tenant_id, customer_id, entries=entries, events=events, through=through)
        billing = SubscriptionBilling(events=events, prices=prices)
        subscriptions.append(billing)
        readings.extend(_closing_readings(reader, billing, billed_in_full, through))
        if preview:
            readings.extend(_progressive_readings(reader, billing, readings, through))
    from tally.app._invoicing_terms import terms_of  # it builds on this module's helpers

    terms = terms_of(
        connection, tenant_id, customer, currency, [ref for billing in subscriptions for ref in billing.prices]
    )
    context = InvoiceContext(
        customer_id=customer.external_id,
        currency=currency,
        through=through,
        subscriptions=tuple(subscriptions),
        usage=tuple(readings),
        billed=tuple(billed),
        redemptions=terms.redemptions,
        commitments=terms.commitments,
        caps=terms.caps,
        grants=terms.grants,
        tax=_tax(connection, tenant_id, customer, through),
        customer_balance_minor=max(
            0, store.account_balance(connection, tenant_id, BALANCE_ACCOUNT, currency.code, customer.external_id)
        ),
    )
    return Gathered(customer, context, min(next_due) if next_due else None)


def _price_refs(
    connection: Connection,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    *,
    entries: Sequence[subscription_store.RecordedEntry],
    events: BillingEvents,
    through: datetime,
) -> tuple[PriceRef, ...]:
    """The prices the subscription's items name. A fee's amount is in its billing events already; a
    usage price is rated with the customer's override in force at `through`, if any."""
    origins = origins_of(entries)
    plan_of_item: dict[str, uuid.UUID | None] = {}
    for recorded in entries:
        for item_id in recorded.origins:
            plan_of_item[item_id] = recorded.plan_version_id
    held = [periods for periods in events.periods]
    catalog_ids = [origins[periods.price_id].price_id for periods in held]
    rows = subscription_store.catalog_prices(connection, tenant_id, catalog_ids)
    products = store.price_products(connection, tenant_id, catalog_ids)
    units = subscription_store.custom_units(connection, tenant_id)
    refs: list[PriceRef] = []
    for periods in held:
        origin = origins[periods.price_id]
        row = rows[origin.price_id]
        price: Price = price_from_document(row.document, units)
        if periods.kind is ItemKind.USAGE:
            override = subscription_store.override_at(connection, tenant_id, customer_id, origin.price_id, through)
            if override is not None:
                price = price_from_document(override.document, units)
        plan_version_id = plan_of_item.get(periods.price_id)
        plan = (
            subscription_store.plan_version(connection, tenant_id, plan_version_id)
            if plan_version_id is not None
            else None
        )
        refs.append(
            PriceRef(
                price_id=periods.price_id,
                price=price,
                catalog_price_id=str(origin.price_id),
                code=origin.price_code,
                product=products.get(origin.price_id, ""),
                plan_id=plan.plan_code if plan is not None else "",
                plan_version=plan.version if plan is not None else None,
            )
        )
    return tuple(refs)


class _UsageReader:
    """Usage of one customer through the event store, per price, period and group."""

    def __init__(self, connection: Connection, event_store: EventStore, tenant_id: uuid.UUID, customer: str) -> None:
        self.connection = connection
        self.event_store = event_store
        self.tenant_id = tenant_id
        self.customer = customer
        self.meters: dict[str, MeterVersion] = {}

    def meter(self, code: str) -> MeterVersion:
        if code not in self.meters:
            row = meter_store.get_meter(self.connection, self.tenant_id, code)
            version = (
                None
                if row is None
                else meter_store.get_version(self.connection, self.tenant_id, row.id, row.latest_version)
            )
            if version is None:
                raise Rejected.because("meter_not_found", f"no meter {code!r} for a usage price", "meter")
            self.meters[code] = version.to_core()
        return self.meters[code]

    def read(
        self, billing: SubscriptionBilling, price_id: str, period: Period, windows: Sequence[Period], progressive: bool
    ) -> list[UsageReading]:
        meter_code = billing.price(price_id).price.meter
        if meter_code is None:
            raise Rejected.because("usage_reading_price_must_be_metered", f"{price_id} is not a usage price", "usage")
        meter = self.meter(meter_code)
        if len(windows) > 1 and meter.definition.aggregation.kind not in _ADDITIVE:
            raise Rejected.because(
                "usage_windows_not_additive",
                f"meter {meter.code} ({meter.definition.aggregation.kind}) cannot add up a period measured in "
                f"{len(windows)} windows (a pause or a trial inside it)",
                "usage",
            )
        totals: dict[tuple[str | None, ...], Decimal] = {}
        for window in windows:
            result = self.event_store.usage(
                self.tenant_id,
                UsageQuery(
                    customer=self.customer,
                    meter=meter,
                    start=window.start,
                    end=window.end,
                    granularity=Granularity.TOTAL,
                    group_by=meter.definition.group_by,
                ),
            )
            for row in result.rows:
                totals[row.group] = totals.get(row.group, Decimal(0)) + (row.value or Decimal(0))
        if not totals:
            totals[()] = Decimal(0)  # no usage at all: the period is billed at zero, once
        return [
            UsageReading(
                subscription_id=billing.subscription_id,
                price_id=price_id,
                period=period,
                usage=Quantity(quantity),
                windows=tuple(windows),
                group=group,
                progressive=progressive,
            )
            for group, quantity in sorted(totals.items(), key=lambda item: [(v is not None, v or "") for v in item[0]])
        ]


def _closing_readings(
    reader: _UsageReader,
    billing: SubscriptionBilling,
    billed_in_full: set[tuple[str, str, Period]],
    through: datetime,
) -> list[UsageReading]:
    """Readings of every due usage period never billed in full, and of those that ended recently
    (late events), each over exactly its due usage windows."""
    windows: dict[tuple[str, Period], list[Period]] = {}
    for event in billing.events.events:
        if event.kind is BillingEventKind.USAGE:
            windows.setdefault((event.price_id, event.period), []).append(event.service_period)
    readings: list[UsageReading] = []
    for (price_id, period), found in windows.items():
        recent = period.end > through - LATE_USAGE_LOOKBACK
        if (billing.subscription_id, price_id, period) in billed_in_full and not recent:
            continue
        readings.extend(reader.read(billing, price_id, period, sorted(found, key=lambda w: w.start), False))
    return readings


def _progressive_readings(
    reader: _UsageReader, billing: SubscriptionBilling, read: Sequence[UsageReading], through: datetime
) -> list[UsageReading]:
    """Usage so far of each usage period under way at `through` (for the upcoming invoice)."""
    done = {(reading.subscription_id, reading.price_id, reading.period) for reading in read}
    readings: list[UsageReading] = []
    for periods in billing.events.periods:
        if periods.kind is not ItemKind.USAGE:
            continue
        for period in periods.periods:
            key = (billing.subscription_id, periods.price_id, period)
            if period.start < through < period.end and key not in done:
                window = Period(period.start, through)
                readings.extend(reader.read(billing, periods.price_id, period, [window], True))
    return readings


def _tax(
    connection: Connection, tenant_id: uuid.UUID, customer: customer_store.CustomerRow, through: datetime
) -> TaxRateTable | None:
    """The customer's own rates in force at `through`, else the tenant's defaults (a rate retired
    before the run no longer applies; tax is never reconciled, so earlier invoices keep theirs)."""
    rows = term_store.tax_rates_in_force(connection, tenant_id, customer.id, through)
    if not rows:
        return None
    default: list[TaxRate] = []
    by_product: dict[str, list[TaxRate]] = {}
    for row in rows:
        rate = TaxRate(rate_id=str(row.id), name=row.name, percent=row.percent, jurisdiction=row.jurisdiction)
        if row.product is None:
            default.append(rate)
        else:
            by_product.setdefault(row.product, []).append(rate)
    rates = CustomerTaxRates(
        default=tuple(default), by_product={product: tuple(found) for product, found in by_product.items()}
    )
    return TaxRateTable({customer.external_id: rates})


# ----- apply a proposal to the draft -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Applied:
    invoice_id: uuid.UUID | None  # the draft after the run (None: no draft)
    created: bool
    changed: bool  # anything written (created, refreshed or deleted)
    lines: int


def _fields(proposal: Proposal, state: InvoiceState) -> store.DraftFields:
    totals = proposal.totals
    return store.DraftFields(
        through=proposal.through,
        period_start=min(line.key.service_start for line in proposal.lines),
        period_end=max(line.key.service_end for line in proposal.lines),
        subtotal_minor=totals.subtotal_minor,
        discount_minor=totals.discount_minor,
        credits_minor=totals.credits_minor,
        tax_minor=totals.tax_minor,
        total_minor=totals.total_minor,
        balance_applied_minor=totals.balance_applied_minor,
        balance_credited_minor=totals.balance_credited_minor,
        amount_due_minor=totals.amount_due_minor,
        tax=[store.encode_tax(line) for line in proposal.tax],
        creditable=[[code, amount] for code, amount in state.creditable],
        postings=[store.encode_posting(posting) for posting in invoice_postings(proposal)],
    )


def _signature(lines: Sequence[tuple[Any, int, int, int]]) -> list[tuple[Any, int, int, int]]:
    return sorted(lines, key=lambda item: (item[0].sort_key(), item[1]))


def _same(connection: Connection, draft: store.InvoiceRow, proposal: Proposal, fields: store.DraftFields) -> bool:
    stored = [
        (line.key, line.sequence, line.amount_minor, line.amount_minor_total)
        for line in store.lines_of(connection, draft.id)
    ]
    proposed = [(line.key, line.sequence, line.amount_minor, line.amount_minor_total) for line in proposal.lines]
    return (
        _signature(stored) == _signature(proposed)
        and draft.total_minor == fields.total_minor
        and draft.amount_due_minor == fields.amount_due_minor
        and draft.tax == fields.tax
        and draft.postings == fields.postings
        and draft.creditable == fields.creditable
    )


def apply_proposal(
    connection: Connection,
    tenant_id: uuid.UUID,
    customer: customer_store.CustomerRow,
    proposal: Proposal,
    now: datetime,
) -> Applied:
    """The caller holds the customer's lock. A line key and sequence taken meanwhile (a finalize
    under another lock holder, which cannot happen while we hold ours, or a bug) fails on the
    UNIQUE constraint and the whole run is retried from the gather."""
    currency = proposal.currency.code
    draft = store.draft_of(connection, tenant_id, customer.id, currency)
    if proposal.is_empty:
        if draft is None:
            return Applied(None, created=False, changed=False, lines=0)
        store.delete_draft(connection, draft.id)
        return Applied(None, created=False, changed=True, lines=0)
    invoice_id = draft.id if draft is not None else new_id()
    fields = _fields(proposal, draft_invoice(str(invoice_id), proposal))
    if draft is not None and _same(connection, draft, proposal, fields):
        return Applied(draft.id, created=False, changed=False, lines=len(proposal.lines))
    try:
        if draft is None:
            store.insert_draft(
                connection,
                invoice_id=invoice_id,
                tenant_id=tenant_id,
                customer_id=customer.id,
                currency=currency,
                fields=fields,
                now=now,
            )
        else:
            store.delete_draft_lines(connection, invoice_id)
            store.update_draft(connection, invoice_id, fields, now)
        store.insert_lines(
            connection,
            tenant_id=tenant_id,
            invoice_id=invoice_id,
            customer_id=customer.id,
            currency=currency,
            lines=proposal.lines,
            line_ids=new_ids(len(proposal.lines)),
            now=now,
        )
    except errors.UniqueViolation as violation:
        raise RetryRequested from violation
    return Applied(invoice_id, created=draft is None, changed=True, lines=len(proposal.lines))


def bill_locked(
    connection: Connection, event_store: EventStore, tenant_id: uuid.UUID, customer_id: uuid.UUID, through: datetime
) -> tuple[Gathered, Applied] | None:
    """Bring the customer's draft up to what is due through `through`; the caller holds the customer's
    lock. None for a customer without a currency."""
    gathered = gather(connection, event_store, tenant_id, customer_id, through)
    if gathered is None:
        return None
    applied = apply_proposal(connection, tenant_id, gathered.customer, propose(gathered.context), through)
    store.record_customer_run(
        connection, tenant_id, customer_id, billed_through=through, next_run_at=gathered.next_due_at, now=through
    )
    return gathered, applied


# ----- settle: state and postings ---------------------------------------------------------------------


def state_of(row: store.InvoiceRow, unit: money.Unit) -> InvoiceState:
    return InvoiceState(
        invoice_id=str(row.id),
        customer_id=str(row.customer_id),
        currency=unit,
        status=InvoiceStatus(row.status),
        total_minor=row.total_minor,
        balance_applied_minor=row.balance_applied_minor,
        balance_credited_minor=row.balance_credited_minor,
        amount_due_minor=row.amount_due_minor,
        creditable=tuple((code, int(amount)) for code, amount in row.creditable),
        number=row.number,
        issued_at=row.issued_at,
        due_at=row.due_at,
        amount_paid_minor=row.amount_paid_minor,
        amount_credited_minor=row.amount_credited_minor,
        credited_against_due_minor=row.credited_against_due_minor,
    )


def post_in(
    engine: Engine,
    connection: Connection,
    clock: Clock,
    tenant_id: uuid.UUID,
    postings: Sequence[Posting],
    *,
    key_prefix: str,
    effective_at: datetime,
    reference: str,
) -> list[uuid.UUID]:
    """Write `postings` inside the caller's transaction, keyed `<key_prefix>:<index>`. A refusal
    (a floor that would break) raises, so nothing the postings pay for is written either."""
    if not postings:
        return []
    refs = list(dict.fromkeys(entry.account for posting in postings for entry in posting.entries))
    accounts = ensure_accounts(engine, tenant_id, refs)
    specs = [
        TransactionSpec(
            idempotency_key=f"{key_prefix}:{index}",
            kind=TransactionKind.POSTED,
            entries=tuple(
                Entry(str(accounts[entry.account].id), entry.direction, entry.amount) for entry in posting.entries
            ),
            effective_at=effective_at,
            template=posting.template,
            description=posting.description,
            reference=reference,
            metadata=dict(posting.metadata),
        )
        for index, posting in enumerate(postings)
    ]
    transaction_ids: list[uuid.UUID] = []
    for written in write_in(connection, clock, tenant_id, specs):
        if written.rejection is not None:
            raise Rejected(written.rejection)
        if written.transaction_id is None:  # pragma: no cover - a write has one or the other
            raise RuntimeError("a posting without a transaction")
        transaction_ids.append(written.transaction_id)
    return transaction_ids


@dataclass(frozen=True, slots=True)
class Settling:
    """What a lifecycle step sees: the invoice locked, its customer, currency and the customer's now."""

    engine: Engine
    connection: Connection
    clock: Clock
    tenant_id: uuid.UUID
    invoice: store.InvoiceRow
    customer: customer_store.CustomerRow
    unit: money.Unit
    now: datetime

    @property
    def state(self) -> InvoiceState:
        return state_of(self.invoice, self.unit)

    def post(self, postings: Sequence[Posting], key_prefix: str) -> list[uuid.UUID]:
        return post_in(
            self.engine,
            self.connection,
            self.clock,
            self.tenant_id,
            postings,
            key_prefix=key_prefix,
            effective_at=self.now,
            reference=f"invoice:{self.invoice.id}",
        )

    def settle(self, state: InvoiceState) -> None:
        store.settle_invoice(
            self.connection,
            self.invoice.id,
            store.Settlement(
                status=state.status.value,
                amount_paid_minor=state.amount_paid_minor,
                amount_credited_minor=state.amount_credited_minor,
                credited_against_due_minor=state.credited_against_due_minor,
                creditable=[[code, amount] for code, amount in state.creditable],
                now=self.now,
            ),
        )


def settle_invoice(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    invoice_id: uuid.UUID,
    act: Callable[[Settling], T],
) -> tuple[store.InvoiceRow, T]:
    """Run one lifecycle step in one transaction, under the customer's lock (the billing run's too)
    and the invoice's row lock; answers the invoice as it is afterwards and what `act` returned."""

    def work(connection: Connection) -> tuple[store.InvoiceRow, T]:
        found = store.get_invoice(connection, tenant_id, invoice_id)
        if found is None:
            raise Rejected.because("invoice_not_found", "no such invoice", "id")
        store.lock_customer(connection, tenant_id, found.customer_id)
        invoice = store.get_invoice(connection, tenant_id, invoice_id, for_update=True)
        customer = customer_store.get_customer(connection, tenant_id, found.customer_id)
        if invoice is None or customer is None:  # pragma: no cover - drafts vanish only under this lock
            raise Rejected.because("invoice_not_found", "no such invoice", "id")
        now = clock_for_customer(connection, tenant_id, customer.id, system=clock).now()
        unit = customer_unit(connection, tenant_id, invoice.currency)
        result = act(Settling(engine, connection, clock, tenant_id, invoice, customer, unit, now))
        after = store.get_invoice(connection, tenant_id, invoice_id)
        if after is None:  # pragma: no cover - finalized invoices are never deleted
            raise RuntimeError("invoice vanished")
        return after, result

    return run_in_transaction(engine, work)
