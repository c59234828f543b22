"""Issue a credit note (full or partial, with a reason) against a finalized invoice.

`issue_credit_note` decides what it takes back from each revenue and tax account (in proportion to
what remains creditable), how much reduces what the customer still owes and how much goes to their
balance. The `credit_note_issued` posting, the credit note row and the invoice's amounts are written
in one transaction. Refusals: `invoice_must_be_finalized`, `invoice_is_void`,
`credit_note_amount_must_be_positive`, `credit_note_exceeds_creditable_amount`,
`credit_note_reason_unknown`, `credit_note_reason_reserved` (`late_usage`: only the billing run
issues those, with the lines they carry), `memo_too_long`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id
from tally.adapters.postgres import invoices as store
from tally.app._invoicing import Settling, credit_invoice, settle_invoice
from tally.core.invoicing import CreditNote, CreditNoteReason
from tally.core.rejections import Rejected


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditNoteInput:
    amount_minor: int
    reason: str
    memo: str = ""


def issue_invoice_credit_note(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, invoice_id: uuid.UUID, note: CreditNoteInput
) -> tuple[store.InvoiceRow, store.CreditNoteRow]:
    if note.reason == CreditNoteReason.LATE_USAGE:
        raise Rejected.because(
            "credit_note_reason_reserved",
            "late_usage credit notes are issued by the billing run, with the lines they credit",
            "reason",
        )

    def act(settling: Settling) -> store.CreditNoteRow:
        return credit_invoice(
            settling,
            CreditNote(
                credit_note_id=str(new_id()),
                amount_minor=note.amount_minor,
                # The core checks the reason (`credit_note_reason_unknown`).
                reason=cast(CreditNoteReason, note.reason),
                memo=note.memo,
            ),
        )

    return settle_invoice(engine, clock, tenant_id, invoice_id, act)
