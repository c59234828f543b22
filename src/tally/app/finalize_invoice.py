"""Finalize a draft invoice: number it, fix its dates, and post it to the ledger — all or nothing.

In one transaction, under the customer's lock and the invoice's row lock:

    gather   the draft and the customer's now
    decide   `finalize` (the core refuses anything but a draft: `invoice_must_be_draft`)
    apply    the next number from the tenant's counter (given back by a rollback, so numbers have no
             gaps), the postings decided with the draft written to the ledger with keys derived from
             the invoice (`invoice:<id>:finalized:<n>`: posted exactly once), the status set

An invoice that owes nothing is paid on finalization.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import invoices as store
from tally.app._invoicing import Settling, resolve_flags_billed_by, settle_invoice
from tally.app._invoicing_terms import mark_customer_due
from tally.core.invoicing import finalize
from tally.core.rejections import Rejected

DUE_DAYS_DEFAULT = 30
DUE_DAYS_MAX = 365
NUMBER_PREFIX = "INV-"


def invoice_number(sequence: int) -> str:
    return f"{NUMBER_PREFIX}{sequence:06d}"


def finalize_invoice(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    invoice_id: uuid.UUID,
    *,
    due_in_days: int = DUE_DAYS_DEFAULT,
) -> store.InvoiceRow:
    check_due_in_days(due_in_days)
    invoice, _ = settle_invoice(
        engine, clock, tenant_id, invoice_id, lambda settling: finalize_locked(settling, due_in_days=due_in_days)
    )
    return invoice


def check_due_in_days(due_in_days: int) -> None:
    if not 0 <= due_in_days <= DUE_DAYS_MAX:
        raise Rejected.because("due_in_days_out_of_range", f"due_in_days is 0 to {DUE_DAYS_MAX}", "due_in_days")


def finalize_locked(settling: Settling, *, due_in_days: int = DUE_DAYS_DEFAULT) -> None:
    """Finalize the draft `settling` holds, inside the caller's transaction, which holds the
    customer's lock and the invoice's row lock: `finalize_invoice`, and the use cases that finalize
    an invoice they have just made (a threshold invoice, a one-off charge invoiced at once)."""
    tenant_id, invoice_id = settling.tenant_id, settling.invoice.id
    state = settling.state
    # The core checks the status first; the number is taken only for a draft.
    finalize(state, number="-", issued_at=settling.now, due_at=settling.now)
    number = invoice_number(store.next_invoice_number(settling.connection, tenant_id))
    due_at = settling.now + timedelta(days=due_in_days)
    final = finalize(state, number=number, issued_at=settling.now, due_at=due_at)
    postings = [store.decode_posting(document) for document in settling.invoice.postings]
    settling.post(postings, f"invoice:{invoice_id}:finalized")
    store.finalize_invoice(
        settling.connection,
        invoice_id,
        status=final.status.value,
        number=number,
        issued_at=settling.now,
        due_at=due_at,
        now=settling.now,
    )
    # From now on an event for a period this invoice billed arrives late: ingest flags it.
    store.close_usage_through(settling.connection, tenant_id, invoice_id, settling.now)
    # An event that arrived after the draft was last computed, but before now, was not late when it
    # arrived and is not on the invoice: the next run measures the periods again and bills it,
    # even for a customer with nothing else due (a subscription that has ended).
    mark_customer_due(settling.connection, tenant_id, settling.customer.id, settling.now)
    # Late usage this invoice bills reached an invoice: its flags are resolved.
    resolve_flags_billed_by(
        settling.connection, tenant_id, settling.invoice, settling.customer.external_id, settling.now
    )
