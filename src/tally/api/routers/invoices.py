"""/v1/invoices: the billing run, drafts and finalized invoices, their lifecycle, line explanations;
and /v1/customers/{id}/upcoming_invoice.

Reading needs `read`; the run and every lifecycle step need `admin`. A lifecycle step writes the
invoice, its ledger postings and its payment or credit note in one transaction, or nothing: a
refusal answers a problem with the core's code (409 for a step the invoice's status does not allow,
422 for amounts). Every POST takes an `Idempotency-Key`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import Field

from tally.adapters import ids
from tally.adapters.pagination import PageRequest
from tally.adapters.postgres import invoices as store
from tally.api.auth import Principal, require_scope
from tally.api.context import get_tally
from tally.api.pagination import list_response, page_request
from tally.api.problems import register_status
from tally.api.raw_json import RawJson, exact_json
from tally.api.routers.charges import ChargeResource, charge_resource
from tally.api.schemas import ApiModel, ListResponse, Resource
from tally.app import invoice_queries
from tally.app.finalize_invoice import DUE_DAYS_DEFAULT, DUE_DAYS_MAX, finalize_invoice
from tally.app.issue_credit_note import CreditNoteInput, issue_invoice_credit_note
from tally.app.mark_invoice_uncollectible import mark_invoice_uncollectible
from tally.app.preview_upcoming_invoice import preview_upcoming_invoice
from tally.app.record_invoice_payment import PaymentInput, record_invoice_payment
from tally.app.run_billing import CustomerRun, bill_customer, run_billing
from tally.app.void_invoice import void_invoice
from tally.bootstrap import Tally
from tally.core.invoicing import CreditNoteReason, InvoiceLine, InvoiceStatus, LineKey
from tally.core.metering.usage import MatchedEvent
from tally.core.rejections import Rejected

router = APIRouter(tags=["Invoices"])

# A step the invoice's status does not allow conflicts with its state; amounts stay 422.
for _code in (
    "invoice_must_be_draft",
    "invoice_must_be_finalized",
    "invoice_is_void",
    "invoice_must_not_be_paid",
    "invoice_must_be_open",
    "invoice_must_have_no_payments",
    "invoice_must_have_no_credit_notes",
    "invoice_line_has_no_usage",
    "billing_run_in_progress",
):
    register_status(_code, 409)


def _billing_reason(stored: str) -> Literal["period", "late_usage", "threshold"]:
    if stored == "late_usage":
        return "late_usage"
    if stored == "threshold":
        return "threshold"
    return "period"


def _parse(prefix: str, text: str, code: str, field: str) -> uuid.UUID:
    parsed = ids.parse_id(prefix, text)
    if parsed is None:
        raise Rejected.because(code, f"no such {field}", field)
    return parsed


def _invoice_id(text: str) -> uuid.UUID:
    return _parse(ids.INVOICE, text, "invoice_not_found", "id")


def _subscription_wire(subscription_id: str) -> str | None:
    try:
        return ids.format_id(ids.SUBSCRIPTION, uuid.UUID(subscription_id))
    except ValueError:
        return None


# ----- resources -----------------------------------------------------------------------------------


class LineKeyResource(ApiModel):
    subscription: str | None = Field(description="The subscription (`sub_…`); null for customer-level lines.")
    price_id: str = Field(description="The billing price: the subscription item's id, or a one-off charge's price.")
    service_start: datetime
    service_end: datetime
    group: list[str | None] = Field(description="Dimension values of a usage line, in the meter's group_by order.")
    kind: str
    reference: str


def _key(key: LineKey) -> LineKeyResource:
    return LineKeyResource(
        subscription=_subscription_wire(key.subscription_id) if key.subscription_id else None,
        price_id=key.price_id,
        service_start=key.service_start,
        service_end=key.service_end,
        group=list(key.group),
        kind=key.kind.value,
        reference=key.reference,
    )


class InvoiceLineResource(ApiModel):
    id: str | None = Field(description="`il_…`; null on an upcoming invoice (nothing is stored).")
    object: Literal["invoice_line"] = "invoice_line"
    key: LineKeyResource
    sequence: int = Field(description="0 for a key's first line, 1, 2, … for its corrections.")
    description: str
    product: str
    amount_minor: int
    amount_minor_total: int = Field(description="What the key carries in total after this line.")
    amount_minor_billed_prior: int = Field(description="What earlier lines of the key carried.")
    quantity: str | None
    due_at: datetime
    provisional: bool = Field(description="Usage so far in a period still under way.")
    explanation: dict[str, Any]


def _stored_line(line: store.LineRow) -> InvoiceLineResource:
    return InvoiceLineResource(
        id=ids.format_id(ids.INVOICE_LINE, line.id),
        key=_key(line.key),
        sequence=line.sequence,
        description=line.description,
        product=line.product,
        amount_minor=line.amount_minor,
        amount_minor_total=line.amount_minor_total,
        amount_minor_billed_prior=line.amount_minor_billed_prior,
        quantity=None if line.quantity is None else str(line.quantity),
        due_at=line.due_at,
        provisional=line.provisional,
        explanation=line.explanation,
    )


def _proposed_line(line: InvoiceLine) -> InvoiceLineResource:
    usage = line.explanation.usage
    return InvoiceLineResource(
        id=None,
        key=_key(line.key),
        sequence=line.sequence,
        description=line.description,
        product=line.product,
        amount_minor=line.amount_minor,
        amount_minor_total=line.amount_minor_total,
        amount_minor_billed_prior=line.amount_minor_billed_prior,
        quantity=None if line.explanation.quantity is None else str(line.explanation.quantity),
        due_at=line.due_at,
        provisional=usage is not None and usage.progressive,
        explanation=line.explanation.document(),
    )


class PaymentResource(ApiModel):
    id: str
    object: Literal["invoice_payment"] = "invoice_payment"
    amount_minor: int
    applied_minor: int
    overpaid_minor: int = Field(description="Beyond what was owed: added to the customer's balance.")
    method: str
    reference: str
    received_at: datetime
    recorded_at: datetime
    ledger_transaction: str


def _payment(payment: store.PaymentRow) -> PaymentResource:
    return PaymentResource(
        id=ids.format_id(ids.INVOICE_PAYMENT, payment.id),
        amount_minor=payment.amount_minor,
        applied_minor=payment.applied_minor,
        overpaid_minor=payment.overpaid_minor,
        method=payment.method,
        reference=payment.reference,
        received_at=payment.received_at,
        recorded_at=payment.recorded_at,
        ledger_transaction=ids.format_id(ids.TRANSACTION, payment.ledger_transaction_id),
    )


class CreditNoteResource(ApiModel):
    id: str
    object: Literal["credit_note"] = "credit_note"
    amount_minor: int
    against_due_minor: int
    to_balance_minor: int
    reason: str
    memo: str
    by_account: list[list[Any]] = Field(description="[account code, amount taken back] pairs.")
    issued_at: datetime
    ledger_transaction: str


def _credit_note(note: store.CreditNoteRow) -> CreditNoteResource:
    return CreditNoteResource(
        id=ids.format_id(ids.CREDIT_NOTE, note.id),
        amount_minor=note.amount_minor,
        against_due_minor=note.against_due_minor,
        to_balance_minor=note.to_balance_minor,
        reason=note.reason,
        memo=note.memo,
        by_account=note.by_account,
        issued_at=note.issued_at,
        ledger_transaction=ids.format_id(ids.TRANSACTION, note.ledger_transaction_id),
    )


class InvoiceResource(Resource):
    object: Literal["invoice"] = "invoice"
    customer: str
    currency: str
    status: InvoiceStatus
    billing_reason: Literal["period", "late_usage", "threshold"] = Field(
        default="period",
        description="period: the billing run's invoice; late_usage: the extra invoice of usage that arrived "
        "after its period was invoiced (the `separate` late usage policy); threshold: issued at once when "
        "usage passed a subscription's billing threshold.",
    )
    number: str | None = Field(description="From the tenant's gapless sequence, set when finalized.")
    through: datetime = Field(description="The moment the invoice was computed through.")
    period_start: datetime
    period_end: datetime
    subtotal_minor: int
    discount_minor: int
    credits_minor: int
    tax_minor: int
    total_minor: int
    balance_applied_minor: int
    balance_credited_minor: int
    amount_due_minor: int
    amount_paid_minor: int
    amount_credited_minor: int
    amount_remaining_minor: int
    tax: list[dict[str, Any]]
    issued_at: datetime | None
    due_at: datetime | None
    finalized_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    uncollectible_at: datetime | None
    lines: list[InvoiceLineResource] | None = Field(default=None, description="Present on a single invoice.")
    payments: list[PaymentResource] | None = None
    credit_notes: list[CreditNoteResource] | None = None


def _invoice(invoice: store.InvoiceRow) -> InvoiceResource:
    return InvoiceResource(
        id=ids.format_id(ids.INVOICE, invoice.id),
        created_at=invoice.created_at,
        customer=ids.format_id(ids.CUSTOMER, invoice.customer_id),
        currency=invoice.currency,
        status=InvoiceStatus(invoice.status),
        billing_reason=_billing_reason(invoice.billing_reason),
        number=invoice.number,
        through=invoice.through,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        subtotal_minor=invoice.subtotal_minor,
        discount_minor=invoice.discount_minor,
        credits_minor=invoice.credits_minor,
        tax_minor=invoice.tax_minor,
        total_minor=invoice.total_minor,
        balance_applied_minor=invoice.balance_applied_minor,
        balance_credited_minor=invoice.balance_credited_minor,
        amount_due_minor=invoice.amount_due_minor,
        amount_paid_minor=invoice.amount_paid_minor,
        amount_credited_minor=invoice.amount_credited_minor,
        amount_remaining_minor=invoice.amount_remaining_minor,
        tax=invoice.tax,
        issued_at=invoice.issued_at,
        due_at=invoice.due_at,
        finalized_at=invoice.finalized_at,
        paid_at=invoice.paid_at,
        voided_at=invoice.voided_at,
        uncollectible_at=invoice.uncollectible_at,
    )


def _full(tally: Tally, tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> InvoiceResource:
    view = invoice_queries.get_invoice(tally.engine, tenant_id, invoice_id)
    resource = _invoice(view.invoice)
    resource.lines = [_stored_line(line) for line in view.lines]
    resource.payments = [_payment(payment) for payment in view.payments]
    resource.credit_notes = [_credit_note(note) for note in view.credit_notes]
    return resource


# ----- bodies ----------------------------------------------------------------------------------------


class RunBody(ApiModel):
    customer: str | None = Field(
        default=None, description="Bill this customer (`cus_…`) now; default: every customer with something due."
    )


class CustomerRunResource(ApiModel):
    customer: str
    invoice: str | None = Field(description="The customer's draft after the run (null: nothing to bill).")
    late_invoice: str | None = Field(
        default=None,
        description="The extra draft of late usage after the run (`separate` late usage policy; null: none).",
    )
    credit_notes: list[str] = Field(
        default_factory=list, description="Credit notes of late usage the run issued (`separate` policy)."
    )
    created: bool
    changed: bool
    lines: int
    error: dict[str, Any] | None = Field(description="Why this customer was not billed (`code`, `message`).")


class RunResource(ApiModel):
    object: Literal["billing_run"] = "billing_run"
    customers: list[CustomerRunResource]


def _customer_run(run: CustomerRun) -> CustomerRunResource:
    rejection = run.rejection
    return CustomerRunResource(
        customer=ids.format_id(ids.CUSTOMER, run.customer_id),
        invoice=None if run.invoice_id is None else ids.format_id(ids.INVOICE, run.invoice_id),
        late_invoice=None if run.late_invoice_id is None else ids.format_id(ids.INVOICE, run.late_invoice_id),
        credit_notes=[ids.format_id(ids.CREDIT_NOTE, note) for note in run.credit_notes],
        created=run.created,
        changed=run.changed,
        lines=run.lines,
        error=None if rejection is None else {"code": rejection.code, "message": rejection.message},
    )


class FinalizeBody(ApiModel):
    due_in_days: int = Field(
        default=DUE_DAYS_DEFAULT, ge=0, le=DUE_DAYS_MAX, description="Due this many days after issue."
    )


class PayBody(ApiModel):
    amount_minor: int = Field(description="In the invoice currency's minor units.")
    currency: str | None = Field(default=None, max_length=16, description="Default: the invoice's.")
    received_at: datetime | None = Field(default=None, description="Default: the customer's now.")
    method: str = Field(default="bank_transfer", max_length=64)
    reference: str = Field(default="", max_length=255)


class CreditNoteBody(ApiModel):
    amount_minor: int
    reason: CreditNoteReason | str = Field(description=f"One of {', '.join(CreditNoteReason)}.")
    memo: str = Field(default="", max_length=1000)


class InvoicePaymentResource(ApiModel):
    invoice: InvoiceResource
    payment: PaymentResource


class InvoiceCreditNoteResource(ApiModel):
    invoice: InvoiceResource
    credit_note: CreditNoteResource


class WindowResource(ApiModel):
    start: datetime
    end: datetime
    value: str | None = Field(description="The meter's value in this window and group, measured now.")
    event_count: int


class ExplanationResource(ApiModel):
    object: Literal["invoice_line_explanation"] = "invoice_line_explanation"
    invoice: str
    line: InvoiceLineResource
    customer_external_id: str = Field(description="The customer id the usage events carry.")
    usage_windows: list[WindowResource] = Field(
        description="Usage lines: each window measured again now (late events since billing show as a difference)."
    )
    charge: ChargeResource | None = Field(
        default=None, description="One-off lines: the charge billed (price, quantity, description, status)."
    )
    meter_version: int | None = Field(
        default=None, description="Usage lines: the meter version the windows are measured with (the billed one)."
    )
    meter_version_inferred: bool = Field(
        default=False,
        description="The line does not record its meter version (written before lines did): the version in force "
        "when it was written is used, else the latest.",
    )
    usage_event_count: int | None = Field(
        default=None, description="Usage lines: how many events the windows count now."
    )
    usage_events_url: str | None = Field(
        default=None, description="Usage lines: where those events are listed, with what each contributed."
    )


class LineEventResource(ApiModel):
    object: Literal["invoice_line_event"] = "invoice_line_event"
    id: str = Field(description="The event's id (as sent at ingest).")
    timestamp: datetime
    properties: dict[str, Any] = Field(description="The effective properties: the latest amendment's, if any.")
    value: Any = Field(
        description='What the event contributes: count `"1"`; sum, max, min, latest: the value property as a '
        "decimal string; time_weighted_sum: the level it sets; unique_count: the distinct value as sent (a JSON "
        "string or number)."
    )


class LineEventList(ApiModel):
    object: Literal["list"] = "list"
    data: list[LineEventResource]
    has_more: bool
    next_cursor: str | None
    url: str
    meter: str
    meter_version: int
    meter_version_inferred: bool


class UpcomingInvoiceResource(ApiModel):
    object: Literal["upcoming_invoice"] = "upcoming_invoice"
    customer: str
    currency: str | None
    through: datetime
    subtotal_minor: int
    discount_minor: int
    credits_minor: int
    tax_minor: int
    total_minor: int
    amount_due_minor: int
    lines: list[InvoiceLineResource]


# ----- routes ------------------------------------------------------------------------------------------


@router.post("/invoices/run", response_model=RunResource, summary="Run billing now")
def run(body: RunBody, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)) -> RunResource:
    """Brings drafts up to what is due by each customer's clock. Running it again changes nothing.
    A run over every customer while another is under way for the tenant answers 409
    `billing_run_in_progress` at once (one customer's run waits for that customer instead)."""
    runs: tuple[CustomerRun, ...]
    if body.customer is not None:
        customer_id = _parse(ids.CUSTOMER, body.customer, "customer_not_found", "customer")
        runs = (bill_customer(tally.engine, tally.clock, principal.tenant_id, customer_id),)
    else:
        runs = run_billing(tally.engine, tally.clock, tenant_id=principal.tenant_id).customers
    return RunResource(customers=[_customer_run(item) for item in runs])


@router.get("/invoices", response_model=ListResponse[InvoiceResource], summary="List invoices, newest first")
def list_invoices(
    request: Request,
    customer: Annotated[str | None, Query(description="Only this customer's invoices (`cus_…`).")] = None,
    status: Annotated[InvoiceStatus | None, Query(description="Only invoices in this status.")] = None,
    page: PageRequest = Depends(page_request(ids.INVOICE)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[InvoiceResource]:
    customer_id = _parse(ids.CUSTOMER, customer, "customer_not_found", "customer") if customer else None
    found = invoice_queries.list_invoices(
        tally.engine,
        principal.tenant_id,
        page,
        customer_id=customer_id,
        status=None if status is None else status.value,
    )
    return list_response(found.map(_invoice), request)


@router.get("/invoices/{id}", response_model=InvoiceResource, summary="Get an invoice with its lines")
def get_invoice(
    id: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> InvoiceResource:
    return _full(tally, principal.tenant_id, _invoice_id(id))


@router.post("/invoices/{id}/finalize", response_model=InvoiceResource, summary="Finalize a draft")
def finalize(
    id: str,
    body: FinalizeBody | None = None,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> InvoiceResource:
    """Numbers the draft, fixes its dates and posts it to the ledger (`invoice_must_be_draft` otherwise)."""
    invoice_id = _invoice_id(id)
    finalize_invoice(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        invoice_id,
        due_in_days=(body or FinalizeBody()).due_in_days,
    )
    return _full(tally, principal.tenant_id, invoice_id)


@router.post("/invoices/{id}/pay", response_model=InvoicePaymentResource, summary="Record a manual payment")
def pay(
    id: str, body: PayBody, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> InvoicePaymentResource:
    """A bank transfer or other payment received outside tally. An overpayment becomes the customer's balance."""
    invoice_id = _invoice_id(id)
    _, payment = record_invoice_payment(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        invoice_id,
        PaymentInput(
            amount_minor=body.amount_minor,
            currency=body.currency,
            received_at=body.received_at,
            method=body.method,
            reference=body.reference,
        ),
    )
    return InvoicePaymentResource(invoice=_full(tally, principal.tenant_id, invoice_id), payment=_payment(payment))


@router.post("/invoices/{id}/void", response_model=InvoiceResource, summary="Void an invoice")
def void(id: str, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)) -> InvoiceResource:
    """Reverses every posting of an open or uncollectible invoice without payments or credit notes."""
    invoice_id = _invoice_id(id)
    void_invoice(tally.engine, tally.clock, principal.tenant_id, invoice_id)
    return _full(tally, principal.tenant_id, invoice_id)


@router.post("/invoices/{id}/mark_uncollectible", response_model=InvoiceResource, summary="Mark uncollectible")
def uncollectible(
    id: str, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> InvoiceResource:
    invoice_id = _invoice_id(id)
    mark_invoice_uncollectible(tally.engine, tally.clock, principal.tenant_id, invoice_id)
    return _full(tally, principal.tenant_id, invoice_id)


@router.post(
    "/invoices/{id}/credit_notes",
    status_code=201,
    response_model=InvoiceCreditNoteResource,
    summary="Issue a credit note",
)
def credit_note(
    id: str, body: CreditNoteBody, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> InvoiceCreditNoteResource:
    """Full or partial, with a reason; never more than is creditable (`credit_note_exceeds_creditable_amount`)."""
    invoice_id = _invoice_id(id)
    _, note = issue_invoice_credit_note(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        invoice_id,
        CreditNoteInput(amount_minor=body.amount_minor, reason=str(body.reason), memo=body.memo),
    )
    return InvoiceCreditNoteResource(
        invoice=_full(tally, principal.tenant_id, invoice_id), credit_note=_credit_note(note)
    )


@router.get(
    "/invoices/{id}/lines/{line_id}/explain", response_model=ExplanationResource, summary="How a line was derived"
)
def explain(
    id: str, line_id: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> ExplanationResource:
    """Price and plan version, quantity, tiers, proration, rounding, coupon or commitment; for usage the
    meter version it was billed with, the group and windows, each measured again from the events with
    that version, how many events they count and where to list them; for a one-off line, its charge."""
    found = invoice_queries.explain_line(
        tally.engine,
        principal.tenant_id,
        _invoice_id(id),
        _parse(ids.INVOICE_LINE, line_id, "invoice_line_not_found", "line_id"),
    )
    meter = found.meter
    return ExplanationResource(
        invoice=id,
        line=_stored_line(found.line),
        customer_external_id=found.customer_external_id,
        usage_windows=[
            WindowResource(
                start=window.start,
                end=window.end,
                value=None if window.value is None else str(window.value),
                event_count=window.event_count,
            )
            for window in found.windows
        ],
        charge=None if found.charge is None else charge_resource(found.charge),
        meter_version=None if meter is None else meter.version.version,
        meter_version_inferred=meter is not None and meter.inferred,
        usage_event_count=found.event_count,
        usage_events_url=None if meter is None else f"/v1/invoices/{id}/lines/{line_id}/events",
    )


def _line_event(event: MatchedEvent) -> dict[str, Any]:
    value: object = None
    if event.distinct_value_json is not None:
        value = RawJson(event.distinct_value_json)
    elif event.value is not None:
        value = str(event.value)
    return {
        "object": "invoice_line_event",
        "id": event.event_id,
        "timestamp": event.timestamp,
        "properties": RawJson(event.properties_json),
        "value": value,
    }


@router.get(
    "/invoices/{id}/lines/{line_id}/events",
    response_model=LineEventList,
    summary="The events a usage line was measured from",
)
def line_events(
    request: Request,
    id: str,
    line_id: str,
    limit: Annotated[int, Query(description=f"1 to {invoice_queries.LINE_EVENTS_LIMIT_MAX}.")] = (
        invoice_queries.LINE_EVENTS_LIMIT_DEFAULT
    ),
    starting_after: Annotated[str | None, Query(description="A `next_cursor` from the previous page.")] = None,
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> Response:
    """The customer's events the line's meter version counts inside the line's windows and dimension
    group, as they count now (retracted events left out, amended ones with their latest properties),
    by timestamp then id, each with the value it contributes. A line that is not a usage line answers
    409 `invoice_line_has_no_usage`."""
    found = invoice_queries.list_line_events(
        tally.engine,
        principal.tenant_id,
        _invoice_id(id),
        _parse(ids.INVOICE_LINE, line_id, "invoice_line_not_found", "line_id"),
        invoice_queries.LineEventsQuery(cursor=starting_after, limit=limit),
    )
    return exact_json(
        {
            "object": "list",
            "data": [_line_event(event) for event in found.events],
            "has_more": found.has_more,
            "next_cursor": found.next_cursor,
            "url": request.url.path,
            "meter": found.meter.version.code,
            "meter_version": found.meter.version.version,
            "meter_version_inferred": found.meter.inferred,
        }
    )


@router.get(
    "/customers/{id}/upcoming_invoice",
    response_model=UpcomingInvoiceResource,
    tags=["Customers"],
    summary="The invoice as if the customer's periods ended now",
)
def upcoming_invoice(
    id: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> UpcomingInvoiceResource:
    """The billing run's own computation through the customer's now, with usage so far in periods
    under way; nothing is written."""
    customer_id = _parse(ids.CUSTOMER, id, "customer_not_found", "id")
    upcoming = preview_upcoming_invoice(tally.engine, tally.clock, principal.tenant_id, customer_id)
    proposal = upcoming.proposal
    return UpcomingInvoiceResource(
        customer=id,
        currency=upcoming.customer.currency,
        through=upcoming.through,
        subtotal_minor=0 if proposal is None else proposal.totals.subtotal_minor,
        discount_minor=0 if proposal is None else proposal.totals.discount_minor,
        credits_minor=0 if proposal is None else proposal.totals.credits_minor,
        tax_minor=0 if proposal is None else proposal.totals.tax_minor,
        total_minor=0 if proposal is None else proposal.totals.total_minor,
        amount_due_minor=0 if proposal is None else proposal.totals.amount_due_minor,
        lines=[] if proposal is None else [_proposed_line(line) for line in proposal.lines],
    )
