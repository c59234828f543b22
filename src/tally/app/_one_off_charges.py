"""What creating and cancelling a one-off charge share, under the customer's invoicing lock.

price        the catalog price a charge names (by id or active code), checked to be a one-off
             price: known, not archived, not metered, without an interval
set aside    the customer's draft taken away for a moment (its lines and row deleted): the one
             draft per customer and currency is where everything due is proposed, so an invoice
             of one charge alone (`invoice_now`) can only be made, and finalized, while there is
             none; a draft carrying a charge just cancelled is dropped the same way
rebill       the draft made again from scratch by the billing run's own code, under the id it
             had; if the run refuses the customer (a meter gone, say), the draft stays away and
             the customer is marked due, so the next run reports the refusal as it would anyway
invoice      an invoice of one charge alone: proposed from the charge and what pays or taxes it,
             written as a draft and finalized in the same transaction
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

import psycopg

from tally.adapters.postgres import catalog as catalog_store
from tally.adapters.postgres import invoices as invoice_store
from tally.adapters.postgres import subscriptions as subscription_store
from tally.app._invoicing import (
    BillingReads,
    Settling,
    bill_locked,
    charge_alone,
    customer_unit,
    decide_draft,
    write_drafts,
)
from tally.app._invoicing_terms import Locked, mark_customer_due
from tally.app.event_store import EventStore
from tally.app.finalize_invoice import finalize_locked
from tally.core.invoicing import OneOffCharge, propose
from tally.core.rating import Price, price_from_document
from tally.core.rejections import InvariantViolation, Rejected

Connection = psycopg.Connection[Any]

logger = logging.getLogger(__name__)


def one_off_price(
    connection: Connection, tenant_id: uuid.UUID, *, price_id: uuid.UUID | None, price_code: str | None
) -> tuple[catalog_store.PriceRow, Price]:
    """The catalog price a charge names, as a one-off price; refusals in this order:
    `price_not_found`, `price_archived`, `price_must_not_be_metered`, `price_must_be_one_off`."""
    if price_id is not None:
        row = catalog_store.get_price(connection, tenant_id, price_id)
    elif price_code is not None:
        row = catalog_store.get_active_price(connection, tenant_id, price_code)
    else:  # pragma: no cover - ChargeInput requires one of them
        raise InvariantViolation("a charge names its price")
    if row is None:
        raise Rejected.because("price_not_found", "no such price", "price")
    if row.archived_at is not None:
        raise Rejected.because("price_archived", f"price {row.code} is archived: it takes no new charges", "price")
    price = price_from_document(row.document, subscription_store.custom_units(connection, tenant_id))
    if price.meter is not None:
        raise Rejected.because(
            "price_must_not_be_metered", f"price {row.code} is billed from usage, not charged by hand", "price"
        )
    if price.interval is not None:
        raise Rejected.because(
            "price_must_be_one_off",
            f"price {row.code} recurs every {price.interval.count} {price.interval.unit}: subscribe to it instead",
            "price",
        )
    return row, price


def set_aside_draft(
    connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID, currency: str
) -> uuid.UUID | None:
    """Delete the customer's draft in `currency` (lines, then row); answers its id (None: none)."""
    draft = invoice_store.draft_of(connection, tenant_id, customer_id, currency)
    if draft is None:
        return None
    invoice_store.delete_draft(connection, draft.id)
    return draft.id


def rebill(
    here: Locked,
    event_store: EventStore,
    *,
    through: datetime,
    draft_id: uuid.UUID | None,
) -> None:
    """The billing run for the customer, in a savepoint; a new draft takes `draft_id`. A refusal
    leaves no draft (see the module) and is logged."""
    connection, tenant_id, customer_id = here.connection, here.tenant_id, here.customer.id
    try:
        with connection.transaction():
            bill_locked(
                connection,
                event_store,
                tenant_id,
                customer_id,
                through,
                engine=here.engine,
                clock=here.clock,
                new_draft_id=draft_id,
            )
    except Rejected as rejected:
        logger.warning(
            "draft not made again after a one-off charge; the next billing run will",
            extra={"customer_id": str(customer_id), "code": rejected.rejection.code},
        )
        mark_customer_due(connection, tenant_id, customer_id, through)


def invoice_alone(here: Locked, charge: OneOffCharge, *, due_in_days: int) -> invoice_store.InvoiceRow:
    """An invoice of `charge` alone, finalized at the customer's now. The caller has set the
    customer's draft aside (one draft per customer and currency)."""
    connection, tenant_id, customer = here.connection, here.tenant_id, here.customer
    proposal = propose(charge_alone(BillingReads(connection, tenant_id), customer, charge, here.now))
    write = decide_draft(customer.id, proposal, here.now, None, [])
    write_drafts(connection, tenant_id, [write])
    invoice_id = write.applied.invoice_id
    invoice = (
        None if invoice_id is None else invoice_store.get_invoice(connection, tenant_id, invoice_id, for_update=True)
    )
    if invoice is None:  # pragma: no cover - a charge always makes a line
        raise InvariantViolation("an invoice of one charge has that charge's line")
    unit = customer_unit(connection, tenant_id, invoice.currency)
    finalize_locked(
        Settling(here.engine, connection, here.clock, tenant_id, invoice, customer, unit, here.now),
        due_in_days=due_in_days,
    )
    after = invoice_store.get_invoice(connection, tenant_id, invoice.id)
    if after is None:  # pragma: no cover - finalized invoices are never deleted
        raise InvariantViolation("invoice vanished")
    return after
