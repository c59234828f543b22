"""Mark an open invoice uncollectible. The receivable stays on the ledger (a later payment still
settles it); writing it off is a decision for finance, not a posting made here.
Refusals: `invoice_must_be_finalized`, `invoice_is_void`, `invoice_must_be_open`."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import invoices as store
from tally.app._invoicing import Settling, settle_invoice
from tally.core.invoicing import mark_uncollectible


def mark_invoice_uncollectible(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, invoice_id: uuid.UUID
) -> store.InvoiceRow:
    def act(settling: Settling) -> None:
        settling.settle(mark_uncollectible(settling.state))

    invoice, _ = settle_invoice(engine, clock, tenant_id, invoice_id, act)
    return invoice
