"""Cancel a pending one-off charge: it will not be billed.

In one transaction under the customer's invoicing lock (so no finalize can slip in between):

    gather   the charge, then (once the lock is held) its status again, and the customer's now
    decide   only a pending charge is cancelled: `charge_is_cancelled` for a cancelled one,
             `charge_is_invoiced` for one on a finalized invoice (409 both; an invoiced charge is
             taken back with a credit note on its invoice, never by editing the invoice)
    apply    the cancellation is recorded; if the customer's draft carries the charge's line, the
             draft is made again without it (under its id), so it can never be finalized with it.
             The database refuses both mistakes too (see migration 0014).
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import INVOICE, format_id
from tally.adapters.postgres import customers as customer_store
from tally.adapters.postgres import invoices as invoice_store
from tally.adapters.postgres import one_off_charges as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app._invoicing_terms import Locked
from tally.app._one_off_charges import rebill, set_aside_draft
from tally.app.customer_clock import clock_for_customer
from tally.app.event_store import EventStore, open_event_store
from tally.core.invoicing import LineKind
from tally.core.rejections import Rejected


def cancel_charge(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    charge_id: uuid.UUID,
    *,
    event_store: EventStore | None = None,
) -> store.ChargeRow:
    usage = event_store or open_event_store(engine)

    def work(connection: psycopg.Connection[Any]) -> store.ChargeRow:
        found = store.get_charge(connection, tenant_id, charge_id)
        if found is None:
            raise Rejected.because("charge_not_found", "no such charge", "id")
        invoice_store.lock_customer(connection, tenant_id, found.customer_id)
        charge = store.get_charge(connection, tenant_id, charge_id)  # as it is under the lock
        customer = customer_store.get_customer(connection, tenant_id, found.customer_id)
        if charge is None or customer is None:  # pragma: no cover - charges and customers are never deleted
            raise Rejected.because("charge_not_found", "no such charge", "id")
        if charge.status == store.CANCELLED:
            raise Rejected.because("charge_is_cancelled", "the charge was cancelled already", "id")
        if charge.status == store.INVOICED:
            invoice = format_id(INVOICE, charge.invoice_id) if charge.invoice_id else "its invoice"
            raise Rejected.because(
                "charge_is_invoiced",
                f"the charge is on finalized invoice {invoice}: issue a credit note on it instead",
                "id",
            )
        now = clock_for_customer(connection, tenant_id, customer.id, system=clock).now()
        store.insert_cancellation(connection, tenant_id, charge.id, now, now)
        draft = invoice_store.draft_of(connection, tenant_id, customer.id, charge.currency)
        if draft is not None and any(
            line.key.kind is LineKind.ONE_OFF and line.key.reference == str(charge.id)
            for line in invoice_store.lines_of(connection, draft.id)
        ):
            draft_id = set_aside_draft(connection, tenant_id, customer.id, charge.currency)
            here = Locked(engine, connection, clock, tenant_id, customer, now)
            rebill(here, usage, through=now, draft_id=draft_id)
        after = store.get_charge(connection, tenant_id, charge.id)
        if after is None:  # pragma: no cover - never deleted
            raise Rejected.because("charge_not_found", "no such charge", "id")
        return after

    return run_in_transaction(engine, work)
