"""Reads of invoices: lists, one invoice with its lines, payments and credit notes, and one line's
explanation down to the usage it was measured from (the event store asked again, per window)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from tally.adapters.pagination import Page, PageRequest
from tally.adapters.postgres import customers as customer_store
from tally.adapters.postgres import invoices as store
from tally.adapters.postgres import meters as meter_store
from tally.adapters.postgres import one_off_charges as charge_store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.event_store import EventStore, open_event_store
from tally.core.invoicing import LineKind
from tally.core.metering.usage import Granularity, UsageQuery
from tally.core.rejections import Rejected


@dataclass(frozen=True, slots=True)
class InvoiceView:
    invoice: store.InvoiceRow
    customer_external_id: str
    lines: tuple[store.LineRow, ...]
    payments: tuple[store.PaymentRow, ...]
    credit_notes: tuple[store.CreditNoteRow, ...]


def list_invoices(
    engine: Engine,
    tenant_id: uuid.UUID,
    page: PageRequest,
    *,
    customer_id: uuid.UUID | None = None,
    status: str | None = None,
) -> Page[store.InvoiceRow]:
    with psycopg_transaction(engine) as connection:
        return store.list_invoices(connection, tenant_id, page, customer_id=customer_id, status=status)


def get_invoice(engine: Engine, tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> InvoiceView:
    with psycopg_transaction(engine) as connection:
        invoice = store.get_invoice(connection, tenant_id, invoice_id)
        if invoice is None:
            raise Rejected.because("invoice_not_found", "no such invoice", "id")
        customer = customer_store.get_customer(connection, tenant_id, invoice.customer_id)
        return InvoiceView(
            invoice=invoice,
            customer_external_id=customer.external_id if customer is not None else "",
            lines=tuple(store.lines_of(connection, invoice_id)),
            payments=tuple(store.payments_of(connection, invoice_id)),
            credit_notes=tuple(store.credit_notes_of(connection, invoice_id)),
        )


@dataclass(frozen=True, slots=True)
class WindowUsage:
    """What the event store answers now for one window of a usage line, in the line's group."""

    start: datetime
    end: datetime
    value: Decimal | None
    event_count: int


@dataclass(frozen=True, slots=True)
class LineExplanation:
    invoice: store.InvoiceRow
    line: store.LineRow
    customer_external_id: str
    # Usage lines only: each window measured again (late events since billing show as a difference).
    windows: tuple[WindowUsage, ...]
    # One-off lines only: the charge the line bills (its price, quantity, description, status).
    charge: charge_store.ChargeRow | None = None


def explain_line(
    engine: Engine,
    tenant_id: uuid.UUID,
    invoice_id: uuid.UUID,
    line_id: uuid.UUID,
    *,
    event_store: EventStore | None = None,
) -> LineExplanation:
    with psycopg_transaction(engine) as connection:
        invoice = store.get_invoice(connection, tenant_id, invoice_id)
        if invoice is None:
            raise Rejected.because("invoice_not_found", "no such invoice", "id")
        line = store.get_line(connection, tenant_id, invoice_id, line_id)
        if line is None:
            raise Rejected.because("invoice_line_not_found", "no such line on this invoice", "line_id")
        customer = customer_store.get_customer(connection, tenant_id, invoice.customer_id)
        external_id = customer.external_id if customer is not None else ""
        usage: dict[str, Any] | None = line.explanation.get("usage")
        charge = None
        if line.key.kind is LineKind.ONE_OFF:
            try:
                charge = charge_store.get_charge(connection, tenant_id, uuid.UUID(line.key.reference))
            except ValueError:  # pragma: no cover - the billing run names charges by their UUID
                charge = None
        meter = None
        if usage is not None:
            row = meter_store.get_meter(connection, tenant_id, usage["meter"])
            version = (
                None if row is None else meter_store.get_version(connection, tenant_id, row.id, row.latest_version)
            )
            meter = None if version is None else version.to_core()
    windows: list[WindowUsage] = []
    if usage is not None and meter is not None:
        reader = event_store or open_event_store(engine)
        group = tuple(usage["group"])
        for window in usage["windows"]:
            start, end = datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"])
            result = reader.usage(
                tenant_id,
                UsageQuery(
                    customer=external_id,
                    meter=meter,
                    start=start,
                    end=end,
                    granularity=Granularity.TOTAL,
                    group_by=meter.definition.group_by,
                ),
            )
            rows = [row for row in result.rows if tuple(row.group) == group or (not group and not row.group)]
            windows.append(
                WindowUsage(
                    start=start,
                    end=end,
                    value=sum((row.value or Decimal(0) for row in rows), Decimal(0)) if rows else None,
                    event_count=sum(row.event_count for row in rows),
                )
            )
    return LineExplanation(invoice, line, external_id, tuple(windows), charge)
