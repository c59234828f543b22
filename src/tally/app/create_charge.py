"""Charge a customer once: a quantity of a one-off catalog price at a moment (an invoice item).

In one transaction under the customer's invoicing lock (the billing run's):

    gather   the customer and its now (a test clock's time for a customer on one), an earlier charge
             with the same idempotency key, the price
    decide   the price is a one-off price in the customer's currency; the charge's line is computed
             by the core as it will be billed (so an amount that cannot be billed is refused now)
    apply    the charge is recorded, pending. With `invoice_now`, it is also billed at once on an
             invoice of its own, finalized in the same transaction (the customer's draft is set
             aside meanwhile and made again afterwards, under its id; see `_one_off_charges`)

A pending charge is billed by the billing run on the customer's next invoice: its line falls due at
`charged_at`, so the draft it is on closes then and is finalized once the grace period has passed.

Idempotent on the client's key: a replay of the same charge answers the charge recorded first
(and its invoice, for `invoice_now`); a replay with other content is refused with
`exists_with_different_<field>`, fields checked in the order of `ChargeInput`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from psycopg import errors
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id
from tally.adapters.postgres import invoices as invoice_store
from tally.adapters.postgres import one_off_charges as store
from tally.adapters.postgres.connections import RetryRequested
from tally.app._invoicing import customer_unit
from tally.app._invoicing_terms import Locked, locked
from tally.app._one_off_charges import invoice_alone, one_off_price, rebill, set_aside_draft
from tally.app.event_store import EventStore, open_event_store
from tally.app.finalize_invoice import DUE_DAYS_DEFAULT, check_due_in_days
from tally.core.invoicing import InvoiceContext, OneOffCharge, PriceRef, propose
from tally.core.invoicing.context import ONE_OFF_CHARGES_MAX, check_one_off_description, check_one_off_quantity
from tally.core.rejections import Rejected

# How far back a charge may be dated: a year covers any invoice a customer can still dispute.
CHARGED_AT_PAST_MAX = timedelta(days=366)
IDEMPOTENCY_KEY_LENGTH_MAX = 255


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargeInput:
    """A charge as asked for. Checks itself in field order; the price by id or by active code."""

    customer_id: uuid.UUID
    price_id: uuid.UUID | None = None
    price_code: str | None = None
    quantity: Decimal = Decimal(1)
    description: str = ""
    # None: the customer's now. Never in the customer's future, at most a year back.
    charged_at: datetime | None = None
    invoice_now: bool = False
    # With `invoice_now`: the invoice is due this many days after it is issued.
    due_in_days: int = DUE_DAYS_DEFAULT
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        if (self.price_id is None) == (self.price_code is None):
            raise Rejected.because("price_required", "name the price by id or by code, not both", "price")
        object.__setattr__(self, "quantity", check_one_off_quantity(self.quantity))
        check_one_off_description(self.description)
        if self.charged_at is not None and self.charged_at.tzinfo is None:
            raise Rejected.because("datetime_must_have_timezone", "charged_at needs a time zone", "charged_at")
        check_due_in_days(self.due_in_days)
        if self.idempotency_key is not None and not 1 <= len(self.idempotency_key) <= IDEMPOTENCY_KEY_LENGTH_MAX:
            raise Rejected.because(
                "idempotency_key_invalid",
                f"an idempotency key has 1 to {IDEMPOTENCY_KEY_LENGTH_MAX} characters",
                "idempotency_key",
            )


@dataclass(frozen=True, slots=True)
class ChargeCreated:
    charge: store.ChargeRow
    # With `invoice_now`: the invoice of the charge alone, finalized.
    invoice: invoice_store.InvoiceRow | None
    # A replay of an earlier request with the same idempotency key: nothing was written.
    replayed: bool = False


def create_charge(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    request: ChargeInput,
    *,
    event_store: EventStore | None = None,
) -> ChargeCreated:
    usage = event_store or open_event_store(engine)

    def act(here: Locked) -> ChargeCreated:
        connection = here.connection
        if request.idempotency_key is not None:
            earlier = store.charge_by_idempotency_key(connection, tenant_id, request.idempotency_key)
            if earlier is not None:
                return _replay(here, earlier)
        row, price = one_off_price(connection, tenant_id, price_id=request.price_id, price_code=request.price_code)
        customer = here.customer
        if customer.currency is None:
            raise Rejected.because(
                "customer_currency_required", "set the customer's currency before charging it", "customer"
            )
        if row.currency != customer.currency:
            raise Rejected.because(
                "price_currency_must_match_customer",
                f"price {row.code} is in {row.currency}, the customer pays in {customer.currency}",
                "price",
            )
        charged_at = request.charged_at if request.charged_at is not None else here.now
        if charged_at > here.now:
            raise Rejected.because(
                "charged_at_must_not_be_in_the_future", "a charge is for something already sold", "charged_at"
            )
        if charged_at < here.now - CHARGED_AT_PAST_MAX:
            raise Rejected.because(
                "charged_at_out_of_range",
                f"a charge is dated at most {CHARGED_AT_PAST_MAX.days} days back",
                "charged_at",
            )
        if store.count_pending(connection, tenant_id, customer.id) >= ONE_OFF_CHARGES_MAX:
            raise Rejected.because(
                "one_off_charges_exceed_limit",
                f"a customer has at most {ONE_OFF_CHARGES_MAX} pending charges: bill or cancel some first",
                "customer",
            )
        charge_id = new_id()
        charge = OneOffCharge(
            charge_id=str(charge_id),
            price=PriceRef(price_id=str(row.id), price=price, code=row.code, product=row.product_code),
            at=charged_at,
            quantity=request.quantity,
            description=request.description,
        )
        # The line as the billing run will compute it: an amount that cannot be billed is refused now.
        unit = customer_unit(connection, tenant_id, customer.currency)
        propose(
            InvoiceContext(
                customer_id=customer.external_id, currency=unit, through=charged_at, one_off_charges=(charge,)
            )
        )
        try:
            with connection.transaction():
                store.insert_charge(
                    connection,
                    store.NewCharge(
                        id=charge_id,
                        tenant_id=tenant_id,
                        customer_id=customer.id,
                        price_id=row.id,
                        currency=row.currency,
                        quantity=request.quantity,
                        description=request.description,
                        charged_at=charged_at,
                        invoice_now=request.invoice_now,
                        idempotency_key=request.idempotency_key,
                        recorded_at=here.now,
                    ),
                )
        except errors.UniqueViolation as violation:
            # The same key recorded meanwhile for another customer: run again, and replay it.
            raise RetryRequested from violation
        invoice = None
        if request.invoice_now:
            draft_id = set_aside_draft(connection, tenant_id, customer.id, customer.currency)
            invoice = invoice_alone(here, charge, due_in_days=request.due_in_days)
            rebill(here, usage, through=here.now, draft_id=draft_id)
        found = store.get_charge(connection, tenant_id, charge_id)
        if found is None:  # pragma: no cover - inserted above
            raise LookupError(charge_id)
        return ChargeCreated(found, invoice)

    def _replay(here: Locked, earlier: store.ChargeRow) -> ChargeCreated:
        for name, same in (
            ("customer", earlier.customer_id == here.customer.id),
            ("price", earlier.price_id == request.price_id or earlier.price_code == request.price_code),
            ("quantity", earlier.quantity == request.quantity),
            ("description", earlier.description == request.description),
            ("charged_at", request.charged_at is None or earlier.charged_at == request.charged_at),
            ("invoice_now", earlier.invoice_now == request.invoice_now),
        ):
            if not same:
                raise Rejected.because(
                    f"exists_with_different_{name}",
                    f"idempotency key {request.idempotency_key!r} recorded a charge with another {name}",
                    name,
                )
        invoice = None
        if earlier.invoice_id is not None:
            invoice = invoice_store.get_invoice(here.connection, tenant_id, earlier.invoice_id)
        return ChargeCreated(earlier, invoice, replayed=True)

    return locked(engine, clock, tenant_id, request.customer_id, act)
