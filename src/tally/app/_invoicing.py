"""What the billing run, the upcoming invoice and the invoice lifecycle share.

    gather   one customer's `InvoiceContext` through a moment: every subscription's billing events and
             prices, usage readings from the event store, pending one-off charges, the lines already
             billed, coupon redemptions, credit grants with what is left of them (ledger balances),
             commitments, caps, tax rates in force, the customer's balance from the ledger. In two halves:
             `prepare` (everything but usage, read through a `BillingReads`, and the usage queries
             it needs) and `Prepared.complete` (the answers to those queries), so the billing run
             can ask the event store for a whole chunk of customers at once in between
    bill     gather, propose and apply for one customer whose lock the caller holds
    apply    a proposal onto the customer's draft: created, refreshed (lines replaced), or deleted
             when nothing is due any more; an identical proposal writes nothing. Also in two
             halves: `decide_draft` (what to write) and `write_drafts` (many customers' writes at
             once), so one customer and a chunk of them are written by the same code
    settle   an invoice read back as the core's `InvoiceState`, and postings written to the ledger
             inside the caller's transaction

The customer is named in the core and the ledger by its external id (the id its usage events carry).
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg import errors
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id, new_ids
from tally.adapters.postgres import billing_batches as batches
from tally.adapters.postgres import customers as customer_store
from tally.adapters.postgres import invoices as store
from tally.adapters.postgres import invoicing_terms as term_store
from tally.adapters.postgres import late_usage as late_store
from tally.adapters.postgres import meters as meter_store
from tally.adapters.postgres import one_off_charges as charge_store
from tally.adapters.postgres import subscriptions as subscription_store
from tally.adapters.postgres.connections import RetryRequested, run_in_transaction
from tally.app._ledger_write import write_in
from tally.app._subscription_write import origins_of, timeline_of
from tally.app.customer_clock import clock_for_customer
from tally.app.event_store import EventStore
from tally.app.ledger_accounts import ensure_accounts
from tally.app.tenant_billing_settings import billing_settings_in
from tally.core import money
from tally.core.frozen import quick_init
from tally.core.invoicing import (
    BilledLine,
    CreditNote,
    CreditNoteReason,
    CustomerTaxRates,
    InvoiceContext,
    InvoiceLine,
    InvoiceState,
    InvoiceStatus,
    LateCredit,
    LateFlag,
    LateUsagePolicy,
    LateUsageSplit,
    LineKind,
    OneOffCharge,
    PriceRef,
    Proposal,
    SubscriptionBilling,
    TaxRate,
    TaxRateTable,
    UsageReading,
    credit_note_issued,
    draft_invoice,
    flag_resolutions,
    invoice_postings,
    issue_credit_note,
    reconcile,
)
from tally.core.invoicing.context import ONE_OFF_CHARGES_MAX
from tally.core.invoicing.postings import BALANCE_ACCOUNT
from tally.core.ledger.model import Entry, TransactionKind, TransactionSpec
from tally.core.ledger.templates import Posting
from tally.core.metering.meters import AggregationKind, MeterVersion
from tally.core.metering.usage import Granularity, UsageQuery, UsageResult
from tally.core.periods import Period
from tally.core.rating import Price, Quantity, price_from_document
from tally.core.rejections import InvariantViolation, Rejected
from tally.core.subscriptions import BillingEventKind, BillingEvents, ItemKind, billing_events

if TYPE_CHECKING:
    from tally.app._invoicing_terms import Terms as _Terms

Connection = psycopg.Connection[Any]
T = TypeVar("T")

# Usage periods billed before are measured again for this long after they end, so late events
# land as correction lines on the next invoice. It must cover the ingest horizon (at most 90 days,
# `Settings.ingest_horizon_days`): an event accepted that late must still reach an invoice.
LATE_USAGE_LOOKBACK = timedelta(days=92)
# Aggregations whose value over several windows is the sum of the windows' values.
_ADDITIVE = frozenset({AggregationKind.COUNT, AggregationKind.SUM})


@dataclass(frozen=True, slots=True)
class Gathered:
    customer: customer_store.CustomerRow
    context: InvoiceContext
    # The earliest moment after `through` at which a billing event of the customer can fall due.
    next_due_at: datetime | None
    # The customer's open late-usage flags, read before its usage was measured: the only flags this
    # pass may resolve (one committed after the measurement is left for the next pass).
    flags: tuple[late_store.FlagRow, ...] = ()


def customer_unit(connection: Connection, tenant_id: uuid.UUID, code: str) -> money.Unit:
    return _unit_of(code, subscription_store.custom_units(connection, tenant_id))


def _unit_of(code: str, units: dict[str, money.Unit]) -> money.Unit:
    if code in money.ISO_4217_MINOR_UNITS:
        return money.currency(code)
    if code not in units:
        raise Rejected.because("unit_must_be_known", f"{code!r} is not a unit of this tenant", "currency")
    return units[code]


class BillingReads:
    """Every row gathering reads, asked for one customer at a time, inside the caller's transaction.

    This class reads each one with its own statement. The billing run's `ChunkReads` answers the
    same questions for a chunk of customers from rows it read with one statement per kind, so the
    gathering code below is the same for one customer and for a hundred thousand. Catalog rows
    (prices, plan versions, meters, units) are kept for the life of the object: they do not change
    under a billing run in a way it could see half of (a price in use is never edited)."""

    def __init__(self, connection: Connection, tenant_id: uuid.UUID) -> None:
        self.connection = connection
        self.tenant_id = tenant_id
        self._units: dict[str, money.Unit] | None = None
        self._meters: dict[str, MeterVersion] = {}
        self._prices: dict[tuple[uuid.UUID, uuid.UUID | None], Price] = {}
        self._catalog: dict[uuid.UUID, subscription_store.CatalogPriceRow] = {}
        self._products: dict[uuid.UUID, str] = {}
        self._plans: dict[uuid.UUID, subscription_store.PlanVersionRow | None] = {}

    # The customer and what it has: one statement each.
    def customer(self, customer_id: uuid.UUID) -> customer_store.CustomerRow | None:
        return customer_store.get_customer(self.connection, self.tenant_id, customer_id)

    def billed_lines(self, customer_id: uuid.UUID, currency: str) -> list[BilledLine]:
        return store.billed_lines(self.connection, self.tenant_id, customer_id, currency)

    def subscriptions(self, customer_id: uuid.UUID) -> list[tuple[uuid.UUID, list[subscription_store.RecordedEntry]]]:
        ids = subscription_store.subscription_ids_of_customers(self.connection, self.tenant_id, [customer_id])
        return [(found, subscription_store.timeline_of(self.connection, found)) for found in ids]

    def override(
        self, customer_id: uuid.UUID, price_id: uuid.UUID, at: datetime
    ) -> subscription_store.OverrideRow | None:
        return subscription_store.override_at(self.connection, self.tenant_id, customer_id, price_id, at)

    def terms(self, customer: customer_store.CustomerRow, currency: money.Unit, prices: Sequence[PriceRef]) -> _Terms:
        from tally.app._invoicing_terms import terms_of  # it builds on this module's helpers

        return terms_of(self.connection, self.tenant_id, customer, currency, prices)

    def tax_rates(self, customer_id: uuid.UUID, through: datetime) -> list[term_store.TaxRateRow]:
        return term_store.tax_rates_in_force(self.connection, self.tenant_id, customer_id, through)

    def balance(self, external_id: str, currency: str) -> int:
        return store.account_balance(self.connection, self.tenant_id, BALANCE_ACCOUNT, currency, external_id)

    def late_flags(self, external_id: str) -> list[late_store.FlagRow]:
        """The customer's open late-usage flags, oldest event first."""
        return late_store.open_flags_of(self.connection, self.tenant_id, [external_id]).get(external_id, [])

    def pending_charges(self, customer_id: uuid.UUID) -> list[charge_store.ChargeRow]:
        """The customer's pending one-off charges, oldest first (one more than the core's limit at
        most, so passing it is refused rather than cut short)."""
        found = charge_store.pending_charges_of(self.connection, self.tenant_id, [customer_id], ONE_OFF_CHARGES_MAX)
        return found.get(customer_id, [])

    # The catalog: read once per object.
    def units(self) -> dict[str, money.Unit]:
        if self._units is None:
            self._units = subscription_store.custom_units(self.connection, self.tenant_id)
        return self._units

    def catalog_prices(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, subscription_store.CatalogPriceRow]:
        missing = [found for found in dict.fromkeys(ids) if found not in self._catalog]
        if missing:
            self._catalog |= subscription_store.catalog_prices(self.connection, self.tenant_id, missing)
            self._products |= store.price_products(self.connection, self.tenant_id, missing)
        return {found: self._catalog[found] for found in ids if found in self._catalog}

    def product(self, price_id: uuid.UUID) -> str:
        return self._products.get(price_id, "")

    def price(self, catalog_price_id: uuid.UUID, override: subscription_store.OverrideRow | None) -> Price:
        """The price as rated: the catalog price's document, or the override's."""
        key = (catalog_price_id, None if override is None else override.id)
        if key not in self._prices:
            document = self._catalog[catalog_price_id].document if override is None else override.document
            self._prices[key] = price_from_document(document, self.units())
        return self._prices[key]

    def plan_version(self, plan_version_id: uuid.UUID) -> subscription_store.PlanVersionRow | None:
        if plan_version_id not in self._plans:
            self._plans[plan_version_id] = subscription_store.plan_version(
                self.connection, self.tenant_id, plan_version_id
            )
        return self._plans[plan_version_id]

    def meter(self, code: str) -> MeterVersion:
        if code not in self._meters:
            row = meter_store.get_meter(self.connection, self.tenant_id, code)
            version = (
                None
                if row is None
                else meter_store.get_version(self.connection, self.tenant_id, row.id, row.latest_version)
            )
            if version is None:
                raise Rejected.because("meter_not_found", f"no meter {code!r} for a usage price", "meter")
            self._meters[code] = version.to_core()
        return self._meters[code]


@quick_init
@dataclass(frozen=True, slots=True)
class UsageNeed:
    """One reading to take: a usage price's quantity over its due windows of one period (or, for a
    progressive reading, over the period so far), per dimension group."""

    billing: SubscriptionBilling
    price_id: str
    period: Period
    windows: tuple[Period, ...]
    progressive: bool
    meter: MeterVersion

    def queries(self, customer: str) -> list[UsageQuery]:
        return [
            UsageQuery(
                customer=customer,
                meter=self.meter,
                start=window.start,
                end=window.end,
                granularity=Granularity.TOTAL,
                group_by=self.meter.definition.group_by,
            )
            for window in self.windows
        ]

    def readings(self, results: Sequence[UsageResult]) -> list[UsageReading]:
        """The readings from the answers to `queries`, in their order: the windows' values added
        up per group (a period measured at zero is billed at zero, once)."""
        totals: dict[tuple[str | None, ...], Decimal] = {}
        for result in results:
            for row in result.rows:
                totals[row.group] = totals.get(row.group, Decimal(0)) + (row.value or Decimal(0))
        if not totals:
            totals[()] = Decimal(0)
        return [
            UsageReading(
                subscription_id=self.billing.subscription_id,
                price_id=self.price_id,
                period=self.period,
                usage=Quantity(quantity),
                windows=self.windows,
                group=group,
                progressive=self.progressive,
                meter_version=self.meter.version,
                meter_version_id=self.meter.version_id,
            )
            for group, quantity in sorted(totals.items(), key=lambda item: [(v is not None, v or "") for v in item[0]])
        ]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A customer's context through a moment, all but its usage: what `gather` knows before it asks
    the event store, and the questions it will ask (`queries`, in order)."""

    customer: customer_store.CustomerRow
    currency: money.Unit
    through: datetime
    subscriptions: tuple[SubscriptionBilling, ...]
    needs: tuple[UsageNeed, ...]
    one_off_charges: tuple[OneOffCharge, ...]
    billed: tuple[BilledLine, ...]
    terms: _Terms
    tax: TaxRateTable | None
    balance_minor: int
    next_due_at: datetime | None
    flags: tuple[late_store.FlagRow, ...]

    def queries(self) -> list[UsageQuery]:
        return [query for need in self.needs for query in need.queries(self.customer.external_id)]

    def complete(self, results: Sequence[UsageResult]) -> Gathered:
        """The context, with `results` answering `queries()` one for one."""
        if len(results) != sum(len(need.windows) for need in self.needs):
            raise InvariantViolation("every usage query of a customer gets exactly one answer")
        readings: list[UsageReading] = []
        offset = 0
        for need in self.needs:
            readings.extend(need.readings(results[offset : offset + len(need.windows)]))
            offset += len(need.windows)
        context = InvoiceContext(
            customer_id=self.customer.external_id,
            currency=self.currency,
            through=self.through,
            subscriptions=self.subscriptions,
            usage=tuple(readings),
            one_off_charges=self.one_off_charges,
            billed=self.billed,
            redemptions=self.terms.redemptions,
            commitments=self.terms.commitments,
            caps=self.terms.caps,
            grants=self.terms.grants,
            tax=self.tax,
            customer_balance_minor=max(0, self.balance_minor),
        )
        return Gathered(self.customer, context, self.next_due_at, self.flags)


def prepare(
    reads: BillingReads, customer_id: uuid.UUID, through: datetime, *, preview: bool = False
) -> Prepared | None:
    """Everything of the customer's context through `through` but usage; None for a customer
    without a currency (it has no subscriptions either). `preview`: also ask for the usage of
    periods still under way, so far (progressive readings), as the upcoming invoice shows it."""
    customer = reads.customer(customer_id)
    if customer is None:
        raise Rejected.because("customer_not_found", "no such customer", "customer")
    if customer.currency is None:
        return None
    currency = _unit_of(customer.currency, reads.units())
    billed = reads.billed_lines(customer_id, customer.currency)
    billed_in_full = {
        (line.key.subscription_id, line.key.price_id, line.key.service_period)
        for line in billed
        if line.key.kind is LineKind.USAGE and not line.provisional
    }
    # Read before usage is measured: a flag read here has its event in the measurement.
    flags = tuple(reads.late_flags(customer.external_id))
    flagged = sorted({flag.timestamp for flag in flags})
    subscriptions: list[SubscriptionBilling] = []
    needs: list[UsageNeed] = []
    next_due: list[datetime] = []
    for subscription_id, entries in reads.subscriptions(customer_id):
        events = billing_events(timeline_of(subscription_id, entries), through=through)
        if events.next_due_at is not None:
            next_due.append(events.next_due_at)
        prices = _price_refs(reads, customer_id, entries=entries, events=events, through=through)
        billing = SubscriptionBilling(events=events, prices=prices)
        subscriptions.append(billing)
        closing = _closing_needs(reads, billing, billed_in_full, through, flagged)
        needs.extend(closing)
        if preview:
            needs.extend(_progressive_needs(reads, billing, closing, through))
    terms = reads.terms(customer, currency, [ref for billing in subscriptions for ref in billing.prices])
    return Prepared(
        customer=customer,
        currency=currency,
        through=through,
        subscriptions=tuple(subscriptions),
        needs=tuple(needs),
        one_off_charges=one_off_charges(reads, reads.pending_charges(customer_id), currency, through),
        billed=tuple(billed),
        terms=terms,
        tax=_tax(reads, customer, through),
        balance_minor=reads.balance(customer.external_id, currency.code),
        next_due_at=min(next_due) if next_due else None,
        flags=flags,
    )


def charge_alone(
    reads: BillingReads, customer: customer_store.CustomerRow, charge: OneOffCharge, through: datetime
) -> InvoiceContext:
    """The context of an invoice of one charge alone (`invoice_now`): the charge, and what pays or
    taxes it as on any invoice (credit grants, tax rates in force, the customer's balance); no
    subscription, so nothing else is recomputed (coupons never discount a one-off charge)."""
    currency = charge.price.price.unit
    terms = reads.terms(customer, currency, [charge.price])
    return InvoiceContext(
        customer_id=customer.external_id,
        currency=currency,
        through=through,
        one_off_charges=(charge,),
        grants=terms.grants,
        tax=_tax(reads, customer, through),
        customer_balance_minor=max(0, reads.balance(customer.external_id, currency.code)),
    )


def gather(
    connection: Connection,
    event_store: EventStore,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    through: datetime,
    *,
    preview: bool = False,
) -> Gathered | None:
    """The customer's context through `through` (see `prepare`), its usage asked of the event store
    one query at a time."""
    prepared = prepare(BillingReads(connection, tenant_id), customer_id, through, preview=preview)
    if prepared is None:
        return None
    return prepared.complete([event_store.usage(tenant_id, query) for query in prepared.queries()])


def one_off_charges(
    reads: BillingReads, rows: Sequence[charge_store.ChargeRow], currency: money.Unit, through: datetime
) -> tuple[OneOffCharge, ...]:
    """The core's charges for pending charge rows in `currency` charged by `through`, each with its
    catalog price as rated (a one-off charge is billed at the catalog price: overrides apply to
    subscriptions)."""
    rows = [row for row in rows if row.currency == currency.code and row.charged_at <= through]
    reads.catalog_prices([row.price_id for row in rows])
    return tuple(
        OneOffCharge(
            charge_id=str(row.id),
            price=PriceRef(
                price_id=str(row.price_id),
                price=reads.price(row.price_id, None),
                code=row.price_code,
                product=reads.product(row.price_id),
            ),
            at=row.charged_at,
            quantity=row.quantity,
            description=row.description,
        )
        for row in rows
    )


def _price_refs(
    reads: BillingReads,
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
    held = list(events.periods)
    reads.catalog_prices([origins[periods.price_id].price_id for periods in held])
    refs: list[PriceRef] = []
    for periods in held:
        origin = origins[periods.price_id]
        override = reads.override(customer_id, origin.price_id, through) if periods.kind is ItemKind.USAGE else None
        price = reads.price(origin.price_id, override)
        plan_version_id = plan_of_item.get(periods.price_id)
        plan = reads.plan_version(plan_version_id) if plan_version_id is not None else None
        refs.append(
            PriceRef(
                price_id=periods.price_id,
                price=price,
                catalog_price_id=str(origin.price_id),
                code=origin.price_code,
                product=reads.product(origin.price_id),
                plan_id=plan.plan_code if plan is not None else "",
                plan_version=plan.version if plan is not None else None,
            )
        )
    return tuple(refs)


def _need(  # noqa: PLR0917 - a private helper of the two kinds of readings
    reads: BillingReads,
    billing: SubscriptionBilling,
    price_id: str,
    period: Period,
    windows: Sequence[Period],
    progressive: bool,
) -> UsageNeed:
    meter_code = billing.price(price_id).price.meter
    if meter_code is None:
        raise Rejected.because("usage_reading_price_must_be_metered", f"{price_id} is not a usage price", "usage")
    meter = reads.meter(meter_code)
    if len(windows) > 1 and meter.definition.aggregation.kind not in _ADDITIVE:
        raise Rejected.because(
            "usage_windows_not_additive",
            f"meter {meter.code} ({meter.definition.aggregation.kind}) cannot add up a period measured in "
            f"{len(windows)} windows (a pause or a trial inside it)",
            "usage",
        )
    return UsageNeed(billing, price_id, period, tuple(windows), progressive, meter)


def _closing_needs(
    reads: BillingReads,
    billing: SubscriptionBilling,
    billed_in_full: set[tuple[str, str, Period]],
    through: datetime,
    flagged: Sequence[datetime],
) -> list[UsageNeed]:
    """Readings of every due usage period never billed in full, of those that ended recently (late
    events), and of those holding the event of an open late-usage flag however long ago they ended
    (so a flag is never left behind by the lookback: `flagged`, earliest first), each over exactly
    its due usage windows."""
    windows: dict[tuple[str, Period], list[Period]] = {}
    for event in billing.events.events:
        if event.kind is BillingEventKind.USAGE:
            windows.setdefault((event.price_id, event.period), []).append(event.service_period)
    needs: list[UsageNeed] = []
    for (price_id, period), found in windows.items():
        recent = period.end > through - LATE_USAGE_LOOKBACK or _holds_any(period, flagged)
        if (billing.subscription_id, price_id, period) in billed_in_full and not recent:
            continue
        needs.append(_need(reads, billing, price_id, period, sorted(found, key=lambda w: w.start), False))
    return needs


def _holds_any(period: Period, moments: Sequence[datetime]) -> bool:
    """Whether a moment of `moments` (sorted) lies in `period`."""
    index = bisect.bisect_left(moments, period.start)
    return index < len(moments) and moments[index] < period.end


def _progressive_needs(
    reads: BillingReads, billing: SubscriptionBilling, closing: Sequence[UsageNeed], through: datetime
) -> list[UsageNeed]:
    """Usage so far of each usage period under way at `through` (for the upcoming invoice)."""
    done = {(need.billing.subscription_id, need.price_id, need.period) for need in closing}
    needs: list[UsageNeed] = []
    for periods in billing.events.periods:
        if periods.kind is not ItemKind.USAGE:
            continue
        for period in periods.periods:
            key = (billing.subscription_id, periods.price_id, period)
            if period.start < through < period.end and key not in done:
                needs.append(_need(reads, billing, periods.price_id, period, [Period(period.start, through)], True))
    return needs


def _tax(reads: BillingReads, customer: customer_store.CustomerRow, through: datetime) -> TaxRateTable | None:
    """The customer's own rates in force at `through`, else the tenant's defaults (a rate retired
    before the run no longer applies; tax is never reconciled, so earlier invoices keep theirs)."""
    rows = reads.tax_rates(customer.id, through)
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


@quick_init
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


def invoice_fields(invoice_id: uuid.UUID, proposal: Proposal) -> store.DraftFields:
    """What a new invoice of `proposal` stores besides its lines (totals, tax, postings)."""
    return _fields(proposal, draft_invoice(str(invoice_id), proposal))


def _signature(lines: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(lines, key=lambda item: (item[0].sort_key(), item[1]))


def _same(
    draft: store.InvoiceRow, stored: Sequence[store.LineRow], proposal: Proposal, fields: store.DraftFields
) -> bool:
    # The quantity too: usage that changes no money (inside a free tier, say) still changes what the
    # line shows, and a finalized line must show every event it was billed from.
    lines = [(line.key, line.sequence, line.amount_minor, line.amount_minor_total, line.quantity) for line in stored]
    proposed = [
        (line.key, line.sequence, line.amount_minor, line.amount_minor_total, line.explanation.quantity)
        for line in proposal.lines
    ]
    return (
        _signature(lines) == _signature(proposed)
        and draft.total_minor == fields.total_minor
        and draft.amount_due_minor == fields.amount_due_minor
        and draft.tax == fields.tax
        and draft.postings == fields.postings
        and draft.creditable == fields.creditable
    )


@quick_init
@dataclass(frozen=True, slots=True)
class DraftWrite:
    """What one proposal asks of its customer's draft: nothing, a new draft, a refresh (lines
    replaced), or a delete. `write_drafts` writes many at once."""

    applied: Applied
    lines_removed_from: uuid.UUID | None = None  # a draft refreshed or deleted
    deleted: uuid.UUID | None = None
    updated: tuple[uuid.UUID, store.DraftFields, datetime] | None = None
    inserted: batches.NewDraft | None = None
    lines: batches.NewLines | None = None


def decide_draft(
    customer_id: uuid.UUID,
    proposal: Proposal,
    now: datetime,
    draft: store.InvoiceRow | None,
    stored: Sequence[store.LineRow],
    *,
    billing_reason: str = "period",
    new_draft_id: uuid.UUID | None = None,
) -> DraftWrite:
    """The write that brings `draft` (with its `stored` lines; None: no draft) to `proposal`. An
    identical proposal writes nothing. A new draft gets `new_draft_id` if given (a draft set aside
    and made again keeps its id), else a new id."""
    currency = proposal.currency.code
    if proposal.is_empty:
        if draft is None:
            return DraftWrite(Applied(None, created=False, changed=False, lines=0))
        return DraftWrite(
            Applied(None, created=False, changed=True, lines=0), lines_removed_from=draft.id, deleted=draft.id
        )
    invoice_id = draft.id if draft is not None else (new_draft_id or new_id())
    fields = _fields(proposal, draft_invoice(str(invoice_id), proposal))
    count = len(proposal.lines)
    if draft is not None and _same(draft, stored, proposal, fields):
        return DraftWrite(Applied(draft.id, created=False, changed=False, lines=count))
    lines = batches.NewLines(
        invoice_id=invoice_id,
        customer_id=customer_id,
        currency=currency,
        lines=proposal.lines,
        line_ids=new_ids(count),
        now=now,
    )
    applied = Applied(invoice_id, created=draft is None, changed=True, lines=count)
    if draft is None:
        inserted = batches.NewDraft(
            invoice_id=invoice_id,
            customer_id=customer_id,
            currency=currency,
            fields=fields,
            now=now,
            billing_reason=billing_reason,
        )
        return DraftWrite(applied, inserted=inserted, lines=lines)
    return DraftWrite(applied, lines_removed_from=draft.id, updated=(draft.id, fields, now), lines=lines)


def write_drafts(connection: Connection, tenant_id: uuid.UUID, writes: Sequence[DraftWrite]) -> None:
    """Write many customers' draft writes with one statement per kind (lines by COPY); the caller
    holds every one of those customers' locks. A line key and sequence taken meanwhile (a finalize
    under another lock holder, which cannot happen while the locks are held, or a bug) fails on the
    UNIQUE constraint: `RetryRequested`, and the caller's transaction runs again from the gather."""
    try:
        batches.delete_lines_of(connection, [w.lines_removed_from for w in writes if w.lines_removed_from])
        batches.delete_drafts(connection, [w.deleted for w in writes if w.deleted is not None])
        for write in writes:
            if write.updated is not None:
                store.update_draft(connection, *write.updated)
        batches.insert_drafts(connection, tenant_id, [w.inserted for w in writes if w.inserted is not None])
        batches.insert_lines(connection, tenant_id, [w.lines for w in writes if w.lines is not None])
    except errors.UniqueViolation as violation:
        raise RetryRequested from violation


PERIOD = "period"
LATE_USAGE = "late_usage"  # the extra invoice of late usage (`LateUsagePolicy.SEPARATE`)
DRAFT_REASONS = (PERIOD, LATE_USAGE)
DraftsByPurpose = Mapping[str, tuple[store.InvoiceRow | None, Sequence[store.LineRow]]]


@dataclass(frozen=True, slots=True)
class CustomerDecision:
    """What one customer's run decided: its regular draft, its late-usage draft (empty unless the
    tenant's policy is `separate`), and the late-usage credit notes to issue."""

    customer: customer_store.CustomerRow
    context: InvoiceContext
    split: LateUsageSplit
    regular: DraftWrite
    late: DraftWrite

    @property
    def writes(self) -> tuple[DraftWrite, DraftWrite]:
        return (self.regular, self.late)


def creditable_of(connection: Connection, tenant_id: uuid.UUID, invoice_ids: Sequence[str]) -> dict[str, int]:
    """What each finalized invoice can still credit (a void or unknown one: nothing), each locked
    until the transaction ends, as a credit note locks it."""
    found: dict[str, int] = {}
    for invoice_id in invoice_ids:
        row = store.get_invoice(connection, tenant_id, uuid.UUID(invoice_id), for_update=True)
        if row is not None and row.status in {"open", "paid", "uncollectible"}:
            found[invoice_id] = sum(int(amount) for _, amount in row.creditable)
    return found


def decide_customer(
    connection: Connection,
    tenant_id: uuid.UUID,
    gathered: Gathered,
    policy: LateUsagePolicy,
    drafts: DraftsByPurpose,
    *,
    new_draft_id: uuid.UUID | None = None,
) -> CustomerDecision:
    """Reconcile, split the lines by the tenant's late usage policy, and decide both drafts' writes."""
    reconciled = reconcile(gathered.context)
    creditable: dict[str, int] = {}
    if policy is LateUsagePolicy.SEPARATE:
        wanted = reconciled.credit_invoices()
        if wanted:
            creditable = creditable_of(connection, tenant_id, wanted)
    split = reconciled.split(policy, creditable)
    customer_id, through = gathered.customer.id, gathered.context.through
    regular = decide_draft(
        customer_id, split.regular, through, *drafts.get(PERIOD, (None, [])), new_draft_id=new_draft_id
    )
    late = decide_draft(
        customer_id, split.extra, through, *drafts.get(LATE_USAGE, (None, [])), billing_reason=LATE_USAGE
    )
    return CustomerDecision(gathered.customer, gathered.context, split, regular, late)


@dataclass(frozen=True, slots=True)
class LateSettled:
    credit_notes: tuple[uuid.UUID, ...]
    flags_resolved: int


# Where `flag_resolutions` sends a flag whose lines went onto an invoice: always a draft in a run.
DRAFT_TARGET_PREFIX = "invoice:"


def resolve_flags_billed_by(
    connection: Connection, tenant_id: uuid.UUID, invoice: store.InvoiceRow, customer_external_id: str, now: datetime
) -> int:
    """On finalizing `invoice`: resolve the customer's open flags whose lines the billing run placed
    on it (`invoice:<id>`; `settle_late_usage` records where). Answers how many. A flag made after
    the draft was last computed is on no draft, whatever its period: it stays open, and the next
    run bills it (resolving every flag in a period the invoice bills would drop its usage)."""
    return late_store.resolve_placed_on(connection, tenant_id, customer_external_id, invoice.id, now)


def settle_late_usage(
    engine: Engine,
    clock: Clock,
    connection: Connection,
    tenant_id: uuid.UUID,
    *,
    decision: CustomerDecision,
    flags: Sequence[late_store.FlagRow],
) -> LateSettled:
    """After the drafts are written: issue the late-usage credit notes (each with its lines), then
    resolve the customer's open `late_usage` flags by where the lines of their periods went. In the
    caller's transaction, under the customer's lock.

    A flag whose lines went onto a draft stays open: a draft is recomputed by every run, and the
    open flag is what keeps its period measured again (`_closing_needs`), so the correction stays on
    the draft until the draft is finalized, which resolves the flag (`resolve_flags_billed_by`).
    Flags resolved here are those credited by a credit note, or with nothing to bill (`no_change`)."""
    if not flags and not decision.split.credits:
        return LateSettled((), 0)  # the usual customer: nothing late to place or credit
    now = decision.context.through
    placed: list[tuple[InvoiceLine, str]] = []
    for write, lines in ((decision.regular, decision.split.regular.lines), (decision.late, decision.split.extra.lines)):
        if write.applied.invoice_id is not None:
            placed.extend((line, f"invoice:{write.applied.invoice_id}") for line in lines)
    notes: list[uuid.UUID] = []
    for credit in decision.split.credits:
        note_id = _issue_late_credit(engine, clock, connection, tenant_id, decision.customer, credit, now)
        notes.append(note_id)
        placed.extend((line, f"credit_note:{note_id}") for line in credit.lines)
    resolved = 0
    if flags:
        answers = flag_resolutions(decision.context, [LateFlag(str(flag.id), flag.timestamp) for flag in flags], placed)
        # Each flag is resolved, or stays open on the draft its lines went to (finalizing that draft
        # resolves it) or on none (its period is still under way).
        final: list[tuple[uuid.UUID, str]] = []
        open_on: list[tuple[uuid.UUID, uuid.UUID | None]] = []
        for flag in flags:
            answer = answers.get(str(flag.id))
            if answer is None:
                open_on.append((flag.id, None))
            elif answer.startswith(DRAFT_TARGET_PREFIX):
                open_on.append((flag.id, uuid.UUID(answer.removeprefix(DRAFT_TARGET_PREFIX))))
            else:
                final.append((flag.id, answer))
        resolved = late_store.resolve(connection, tenant_id, final, now)
        late_store.place(connection, tenant_id, open_on)
    return LateSettled(tuple(notes), resolved)


def _issue_late_credit(  # noqa: PLR0917 - the transaction's parts, then what to credit
    engine: Engine,
    clock: Clock,
    connection: Connection,
    tenant_id: uuid.UUID,
    customer: customer_store.CustomerRow,
    credit: LateCredit,
    now: datetime,
) -> uuid.UUID:
    """A `late_usage` credit note against the invoice that billed the periods, carrying the lines,
    as `issue_invoice_credit_note` issues one (the same posting, row and settlement)."""
    invoice_id = uuid.UUID(credit.invoice_id)
    invoice = store.get_invoice(connection, tenant_id, invoice_id, for_update=True)
    if invoice is None:  # pragma: no cover - `creditable_of` found it under the same lock
        raise InvariantViolation("a late-usage credit note against an invoice that vanished")
    unit = customer_unit(connection, tenant_id, invoice.currency)
    note_id = new_id()
    credit_invoice(
        Settling(engine, connection, clock, tenant_id, invoice, customer, unit, now),
        CreditNote(
            credit_note_id=str(note_id),
            amount_minor=credit.amount_minor,
            reason=CreditNoteReason.LATE_USAGE,
            memo=f"late usage: {len(credit.lines)} line(s) for periods this invoice billed",
        ),
    )
    try:
        store.insert_credit_note_lines(
            connection,
            tenant_id,
            credit_note_id=note_id,
            customer_id=customer.id,
            currency=invoice.currency,
            lines=credit.lines,
            line_ids=new_ids(len(credit.lines)),
            now=now,
        )
    except errors.UniqueViolation as violation:
        raise RetryRequested from violation
    return note_id


def drafts_in(connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID, currency: str) -> DraftsByPurpose:
    found: dict[str, tuple[store.InvoiceRow | None, Sequence[store.LineRow]]] = {}
    for billing_reason in DRAFT_REASONS:
        draft = store.draft_of(connection, tenant_id, customer_id, currency, billing_reason)
        if draft is not None:
            found[billing_reason] = (draft, store.lines_of(connection, draft.id))
    return found


@dataclass(frozen=True, slots=True)
class Billed:
    gathered: Gathered
    applied: Applied  # the regular draft
    late_applied: Applied  # the late-usage draft
    late: LateSettled


def bill_locked(
    connection: Connection,
    event_store: EventStore,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    through: datetime,
    *,
    engine: Engine,
    clock: Clock,
    new_draft_id: uuid.UUID | None = None,
) -> Billed | None:
    """Bring the customer's drafts up to what is due through `through`, issue late-usage credit
    notes and resolve late usage flags; the caller holds the customer's lock. None for a customer
    without a currency. A new period draft gets `new_draft_id` if given (a draft set aside and made
    again keeps its id)."""
    gathered = gather(connection, event_store, tenant_id, customer_id, through)
    if gathered is None:
        return None
    policy = billing_settings_in(connection, tenant_id).late_usage_policy
    drafts = drafts_in(connection, tenant_id, customer_id, gathered.context.currency.code)
    decision = decide_customer(connection, tenant_id, gathered, policy, drafts, new_draft_id=new_draft_id)
    write_drafts(connection, tenant_id, decision.writes)
    late = settle_late_usage(engine, clock, connection, tenant_id, decision=decision, flags=gathered.flags)
    batches.record_customer_runs(connection, tenant_id, [(customer_id, through, gathered.next_due_at)])
    return Billed(gathered, decision.regular.applied, decision.late.applied, late)


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


def credit_invoice(settling: Settling, note: CreditNote) -> store.CreditNoteRow:
    """Issue `note` against the invoice being settled, as every credit note is issued: the core's
    decision (`issue_credit_note`), its `credit_note_issued` posting, the credit note row and the
    invoice's new amounts. `note.credit_note_id` is the row's id."""
    outcome = issue_credit_note(settling.state, note)
    posting = credit_note_issued(settling.customer.external_id, settling.unit, outcome)
    note_id = uuid.UUID(note.credit_note_id)
    (transaction_id,) = settling.post([posting], f"credit_note:{note_id}")
    row = store.CreditNoteRow(
        id=note_id,
        invoice_id=settling.invoice.id,
        amount_minor=note.amount_minor,
        against_due_minor=outcome.against_due_minor,
        to_balance_minor=outcome.to_balance_minor,
        reason=outcome.credit_note.reason.value,
        memo=outcome.credit_note.memo,
        by_account=[[code, amount] for code, amount in outcome.by_account],
        issued_at=settling.now,
        ledger_transaction_id=transaction_id,
    )
    store.insert_credit_note(
        settling.connection, settling.tenant_id, settling.customer.id, settling.invoice.currency, row
    )
    settling.settle(outcome.state)
    return row


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
