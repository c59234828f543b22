"""Reads of invoices: lists, one invoice with its lines, payments and credit notes, and one line's
explanation down to the usage it was measured from (the event store asked again, per window) and
the events themselves.

A usage line is explained with the meter version it was billed with, which its explanation records
(`usage.meter_version`, `usage.meter_version_id`): a meter changed since is a new version and never
reinterprets a billed line. Lines written before lines recorded it are explained with the version
in force when the line was written (its `created_at`, the moment its customer was billed through),
else the latest, and say so (`inferred`). For a customer on a test clock that moment is the
clock's, so the inference compares simulated time with the versions' real creation times.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.pagination import Page, PageRequest
from tally.adapters.postgres import customers as customer_store
from tally.adapters.postgres import invoices as store
from tally.adapters.postgres import meters as meter_store
from tally.adapters.postgres import one_off_charges as charge_store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.event_queries import decode_cursor, encode_cursor
from tally.app.event_store import EventStore, open_event_store
from tally.core.invoicing import LineKind
from tally.core.metering.meters import MeterVersion
from tally.core.metering.usage import (
    MATCHED_EVENTS_LIMIT_MAX,
    Granularity,
    MatchedEvent,
    MatchedEventsQuery,
    UsageQuery,
)
from tally.core.rejections import InvariantViolation, Rejected


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


LINE_EVENTS_LIMIT_DEFAULT = 100
LINE_EVENTS_LIMIT_MAX = MATCHED_EVENTS_LIMIT_MAX


@dataclass(frozen=True, slots=True)
class WindowUsage:
    """What the event store answers now for one window of a usage line, in the line's group."""

    start: datetime
    end: datetime
    value: Decimal | None
    event_count: int


@dataclass(frozen=True, slots=True)
class LineMeter:
    """The meter version a usage line is explained with. `inferred`: the line does not record its
    version (it was written before lines did), so this is the version in force when it was written,
    or the latest when every version is newer."""

    version: MeterVersion
    inferred: bool


@dataclass(frozen=True, slots=True)
class LineExplanation:
    invoice: store.InvoiceRow
    line: store.LineRow
    customer_external_id: str
    # Usage lines only: each window measured again (late events since billing show as a difference).
    windows: tuple[WindowUsage, ...]
    # One-off lines only: the charge the line bills (its price, quantity, description, status).
    charge: charge_store.ChargeRow | None = None
    meter: LineMeter | None = None

    @property
    def event_count(self) -> int | None:
        """How many events the windows count now (usage lines; None otherwise)."""
        return None if self.meter is None else sum(window.event_count for window in self.windows)


@dataclass(frozen=True, slots=True)
class _Found:
    invoice: store.InvoiceRow
    line: store.LineRow
    customer_external_id: str
    usage: dict[str, Any] | None
    meter: LineMeter | None


def _find_line(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, invoice_id: uuid.UUID, line_id: uuid.UUID
) -> _Found:
    invoice = store.get_invoice(connection, tenant_id, invoice_id)
    if invoice is None:
        raise Rejected.because("invoice_not_found", "no such invoice", "id")
    line = store.get_line(connection, tenant_id, invoice_id, line_id)
    if line is None:
        raise Rejected.because("invoice_line_not_found", "no such line on this invoice", "line_id")
    customer = customer_store.get_customer(connection, tenant_id, invoice.customer_id)
    usage: dict[str, Any] | None = line.explanation.get("usage")
    meter = None if usage is None else _line_meter(connection, tenant_id, line, usage)
    return _Found(invoice, line, customer.external_id if customer is not None else "", usage, meter)


def _line_meter(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, line: store.LineRow, usage: dict[str, Any]
) -> LineMeter:
    code = usage["meter"]
    meter = meter_store.get_meter(connection, tenant_id, code)
    if meter is None:
        raise InvariantViolation(f"the meter {code!r} of a billed usage line exists (meters are never deleted)")
    recorded_id, recorded_version = usage.get("meter_version_id"), usage.get("meter_version")
    if recorded_id is not None:
        row = meter_store.get_version_by_id(connection, int(recorded_id))
        if row is None or row.tenant_id != tenant_id or row.meter_id != meter.id or row.version != recorded_version:
            raise InvariantViolation(
                f"usage line {line.id} names version {recorded_version} ({recorded_id}) of meter {code!r}, which is "
                "not that meter's (versions are never deleted)"
            )
        return LineMeter(row.to_core(), inferred=False)
    found = meter_store.version_in_force(connection, tenant_id, meter.id, line.created_at)
    if found is None:
        found = meter_store.get_version(connection, tenant_id, meter.id, meter.latest_version)
    if found is None:
        raise InvariantViolation(f"meter {code!r} has its latest version {meter.latest_version}")
    return LineMeter(found.to_core(), inferred=True)


def _windows(usage: dict[str, Any]) -> list[tuple[datetime, datetime]]:
    return [
        (datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"])) for window in usage["windows"]
    ]


def _charge_of(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, line: store.LineRow
) -> charge_store.ChargeRow | None:
    """The one-off charge a line bills (None for other lines)."""
    if line.key.kind is not LineKind.ONE_OFF:
        return None
    try:
        return charge_store.get_charge(connection, tenant_id, uuid.UUID(line.key.reference))
    except ValueError:  # pragma: no cover - the billing run names charges by their UUID
        return None


def explain_line(
    engine: Engine,
    tenant_id: uuid.UUID,
    invoice_id: uuid.UUID,
    line_id: uuid.UUID,
    *,
    event_store: EventStore | None = None,
) -> LineExplanation:
    with psycopg_transaction(engine) as connection:
        found = _find_line(connection, tenant_id, invoice_id, line_id)
        charge = _charge_of(connection, tenant_id, found.line)
    usage, meter = found.usage, found.meter
    windows: list[WindowUsage] = []
    if usage is not None and meter is not None:
        reader = event_store or open_event_store(engine)
        version = meter.version
        group = tuple(usage["group"])
        for start, end in _windows(usage):
            result = reader.usage(
                tenant_id,
                UsageQuery(
                    customer=found.customer_external_id,
                    meter=version,
                    start=start,
                    end=end,
                    granularity=Granularity.TOTAL,
                    group_by=version.definition.group_by,
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
    return LineExplanation(
        found.invoice, found.line, found.customer_external_id, tuple(windows), charge=charge, meter=meter
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LineEventsQuery:
    """One page of a usage line's events: at most `limit`, after `cursor` (a `next_cursor`)."""

    cursor: str | None = None
    limit: int = LINE_EVENTS_LIMIT_DEFAULT


@dataclass(frozen=True, slots=True)
class LineEvents:
    invoice: store.InvoiceRow
    line: store.LineRow
    customer_external_id: str
    meter: LineMeter
    events: tuple[MatchedEvent, ...]
    next_cursor: str | None  # None: no more events

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


def list_line_events(
    engine: Engine,
    tenant_id: uuid.UUID,
    invoice_id: uuid.UUID,
    line_id: uuid.UUID,
    query: LineEventsQuery,
    *,
    event_store: EventStore | None = None,
) -> LineEvents:
    """The raw events a usage line's quantity was measured from, as they count now: the line's
    customer, its meter version's event type and filters, inside its windows, in its dimension
    group; retracted events left out and amended ones with their latest properties. Ordered by
    (timestamp, event id). Refuses a line that is not a usage line (`invoice_line_has_no_usage`)."""
    if isinstance(query.limit, bool) or not 1 <= query.limit <= LINE_EVENTS_LIMIT_MAX:
        raise Rejected.because("limit_out_of_range", f"limit must be 1 to {LINE_EVENTS_LIMIT_MAX}", "limit")
    after = decode_cursor(query.cursor) if query.cursor is not None else None
    with psycopg_transaction(engine) as connection:
        found = _find_line(connection, tenant_id, invoice_id, line_id)
    if found.usage is None or found.meter is None:
        raise Rejected.because(
            "invoice_line_has_no_usage",
            f"a {found.line.key.kind.value} line is not measured from events; only usage lines are",
            "line_id",
        )
    reader = event_store or open_event_store(engine)
    page = reader.matched_events(
        tenant_id,
        MatchedEventsQuery(
            customer=found.customer_external_id,
            meter=found.meter.version,
            windows=tuple(sorted(_windows(found.usage))),
            group=tuple(found.usage["group"]),
            after=after,
            limit=query.limit,
        ),
    )
    last = page.events[-1] if page.events else None
    next_cursor = encode_cursor(last.timestamp, last.event_id) if page.has_more and last is not None else None
    return LineEvents(found.invoice, found.line, found.customer_external_id, found.meter, page.events, next_cursor)
