"""Void a finalized invoice that has neither payments nor credit notes: every posting it made is
reversed (`invoice_voided`), in the same transaction as the status change.

A void forgives: the invoice's lines stay billed, so the next billing run does not bill them
again. To ask for less, issue a credit note instead. Refusals: `invoice_must_be_finalized`,
`invoice_is_void`, `invoice_must_not_be_paid`, `invoice_must_have_no_payments`,
`invoice_must_have_no_credit_notes`.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import invoices as store
from tally.app._invoicing import Settling, settle_invoice
from tally.core.invoicing import invoice_voided, void


def void_invoice(engine: Engine, clock: Clock, tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> store.InvoiceRow:
    def act(settling: Settling) -> None:
        state = void(settling.state)
        postings = [store.decode_posting(document) for document in settling.invoice.postings]
        settling.post(invoice_voided(postings), f"invoice:{invoice_id}:voided")
        settling.settle(state)

    invoice, _ = settle_invoice(engine, clock, tenant_id, invoice_id, act)
    return invoice
