"""Record a manual payment (a bank transfer) against a finalized invoice.

In one transaction under the customer's lock: `record_payment` decides what the payment settles
and what exceeds the amount remaining (the customer's balance, used by the next invoice); the
`manual_payment_recorded` posting, the payment row and the invoice's new amounts are written
together. Refusals: `invoice_must_be_finalized`, `invoice_is_void`, `invoice_must_be_open`,
`payment_amount_must_be_positive`, `payment_currency_must_match_invoice`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id
from tally.adapters.postgres import invoices as store
from tally.app._invoicing import Settling, customer_unit, settle_invoice
from tally.core.invoicing import ManualPayment, manual_payment_recorded, record_payment
from tally.core.rejections import Rejected

METHOD_LENGTH_MAX = 64
REFERENCE_LENGTH_MAX = 255


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentInput:
    amount_minor: int
    currency: str | None = None  # default: the invoice's
    received_at: datetime | None = None  # default: the customer's now
    method: str = "bank_transfer"
    reference: str = ""

    def __post_init__(self) -> None:
        if not 1 <= len(self.method) <= METHOD_LENGTH_MAX:
            raise Rejected.because("payment_method_invalid", f"method is 1 to {METHOD_LENGTH_MAX} characters", "method")
        if len(self.reference) > REFERENCE_LENGTH_MAX:
            raise Rejected.because(
                "payment_reference_too_long", f"reference is at most {REFERENCE_LENGTH_MAX} characters", "reference"
            )


def record_invoice_payment(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, invoice_id: uuid.UUID, payment: PaymentInput
) -> tuple[store.InvoiceRow, store.PaymentRow]:
    def act(settling: Settling) -> store.PaymentRow:
        payment_id = new_id()
        unit = (
            settling.unit
            if payment.currency is None
            else customer_unit(settling.connection, tenant_id, payment.currency)
        )
        received_at = payment.received_at or settling.now
        outcome = record_payment(
            settling.state,
            ManualPayment(
                payment_id=str(payment_id),
                amount_minor=payment.amount_minor,
                currency=unit,
                received_at=received_at,
                method=payment.method,
                reference=payment.reference,
            ),
        )
        posting = manual_payment_recorded(settling.customer.external_id, outcome)
        (transaction_id,) = settling.post([posting], f"payment:{payment_id}")
        row = store.PaymentRow(
            id=payment_id,
            invoice_id=invoice_id,
            amount_minor=payment.amount_minor,
            applied_minor=outcome.applied_minor,
            overpaid_minor=outcome.overpaid_minor,
            method=payment.method,
            reference=payment.reference,
            received_at=received_at,
            recorded_at=settling.now,
            ledger_transaction_id=transaction_id,
        )
        store.insert_payment(settling.connection, tenant_id, settling.customer.id, settling.invoice.currency, row)
        settling.settle(outcome.state)
        return row

    return settle_invoice(engine, clock, tenant_id, invoice_id, act)
