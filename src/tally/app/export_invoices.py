"""Invoices and invoice lines for finance, as CSV, JSON or JSON Lines, streamed.

Rows are read through a server-side cursor in batches of `BATCH_ROWS` and written as they come, so
memory stays bounded however many invoices a tenant has. Columns have stable names (`INVOICE_COLUMNS`,
`LINE_COLUMNS`; new columns are only ever added at the end) and amounts are exact decimals in the
currency's major units, written as text ("1234.50", "0.000002" never appears: money on an invoice
has the currency's places; quantities keep every digit).

Filters: `status`, and `issued_from` / `issued_to`, a half-open range of issue times (drafts have no
issue time, so a range leaves them out). Rows come in creation order (invoice ids are UUIDv7), lines
in their invoice's order.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine

from tally.adapters import ids
from tally.adapters.postgres.connections import psycopg_transaction
from tally.core import money
from tally.core.rejections import Rejected

BATCH_ROWS = 1_000
STATUSES = ("draft", "open", "paid", "void", "uncollectible")


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"  # one JSON array
    JSONL = "jsonl"  # one JSON object per line


class ExportRecords(StrEnum):
    INVOICES = "invoices"
    LINES = "lines"


INVOICE_COLUMNS: tuple[str, ...] = (
    "invoice_id",
    "number",
    "status",
    "customer_id",
    "customer_external_id",
    "customer_name",
    "currency",
    "issued_at",
    "due_at",
    "period_start",
    "period_end",
    "subtotal",
    "discount",
    "credits",
    "tax",
    "total",
    "balance_applied",
    "balance_credited",
    "amount_due",
    "amount_paid",
    "amount_credited",
    "amount_remaining",
    "finalized_at",
    "paid_at",
    "voided_at",
    "uncollectible_at",
    "created_at",
)

LINE_COLUMNS: tuple[str, ...] = (
    "invoice_id",
    "invoice_number",
    "invoice_status",
    "line_id",
    "position",
    "customer_id",
    "customer_external_id",
    "currency",
    "kind",
    "product",
    "description",
    "subscription_id",
    "price_id",
    "service_start",
    "service_end",
    "group",
    "reference",
    "sequence",
    "quantity",
    "unit_amount",
    "amount",
    "amount_total",
    "amount_billed_prior",
    "provisional",
    "issued_at",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportQuery:
    records: ExportRecords = ExportRecords.INVOICES
    format: ExportFormat = ExportFormat.CSV
    status: str | None = None
    issued_from: datetime | None = None
    issued_to: datetime | None = None

    def validate(self) -> ExportQuery:
        if self.status is not None and self.status not in STATUSES:
            raise Rejected.because("invoice_status_unknown", f"one of {', '.join(STATUSES)}", "status")
        for name, moment in (("from", self.issued_from), ("to", self.issued_to)):
            if moment is not None and moment.utcoffset() is None:
                raise Rejected.because("datetime_must_have_timezone", "give a UTC offset", name)
        if self.issued_from is not None and self.issued_to is not None and self.issued_to <= self.issued_from:
            raise Rejected.because("export_range_must_not_be_empty", "`to` must be after `from`", "to")
        return self


def columns_of(records: ExportRecords) -> tuple[str, ...]:
    return INVOICE_COLUMNS if records is ExportRecords.INVOICES else LINE_COLUMNS


def export_invoices(engine: Engine, tenant_id: uuid.UUID, query: ExportQuery) -> Iterator[str]:
    """The export as text chunks. Validate before streaming starts: a rejection mid-stream could
    only cut the file short."""
    query.validate()
    return _chunks(engine, tenant_id, query)


def _chunks(engine: Engine, tenant_id: uuid.UUID, query: ExportQuery) -> Iterator[str]:
    columns = columns_of(query.records)
    records = _records(engine, tenant_id, query)
    if query.format is ExportFormat.CSV:
        yield _csv_row(columns)
        for batch in records:
            yield "".join(
                _csv_row([_csv_value(record[name], guard=name in _FREE_TEXT) for name in columns]) for record in batch
            )
    elif query.format is ExportFormat.JSONL:
        for batch in records:
            yield "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in batch)
    else:
        yield "["
        first = True
        for batch in records:
            parts = []
            for record in batch:
                parts.append(("\n" if first else ",\n") + json.dumps(record, ensure_ascii=False))
                first = False
            yield "".join(parts)
        yield "\n]\n"


def _records(engine: Engine, tenant_id: uuid.UUID, query: ExportQuery) -> Iterator[list[dict[str, Any]]]:
    filters = ["i.tenant_id = %(tenant_id)s"]
    parameters: dict[str, Any] = {"tenant_id": tenant_id}
    if query.status is not None:
        filters.append("i.status = %(status)s")
        parameters["status"] = query.status
    if query.issued_from is not None:
        filters.append("i.issued_at >= %(issued_from)s")
        parameters["issued_from"] = query.issued_from
    if query.issued_to is not None:
        filters.append("i.issued_at < %(issued_to)s")
        parameters["issued_to"] = query.issued_to
    where = " AND ".join(filters)
    with psycopg_transaction(engine) as connection:
        # One snapshot for the whole file, so a long export is consistent.
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        scales = _scales(connection, tenant_id)
        if query.records is ExportRecords.INVOICES:
            sql = f"""SELECT {_INVOICE_SELECT} FROM invoices i
                      JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id
                      WHERE {where} ORDER BY i.id"""
            convert = _invoice_record
        else:
            sql = f"""SELECT {_LINE_SELECT} FROM invoices i
                      JOIN invoice_lines l ON l.invoice_id = i.id
                      JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id
                      WHERE {where} ORDER BY i.id, l.position"""
            convert = _line_record
        with connection.cursor(name=f"tally_export_{uuid.uuid4().hex}") as cursor:
            cursor.itersize = BATCH_ROWS
            cursor.execute(sql, parameters)
            while rows := cursor.fetchmany(BATCH_ROWS):
                yield [convert(row, scales) for row in rows]


def _scales(connection: Any, tenant_id: uuid.UUID) -> dict[str, int]:
    scales = dict(money.ISO_4217_MINOR_UNITS)
    for code, scale in connection.execute("SELECT code, scale FROM units WHERE tenant_id = %s", (tenant_id,)):
        scales[code] = scale
    return scales


_INVOICE_SELECT = (
    "i.id, i.number, i.status, i.customer_id, c.external_id, c.name, i.currency, i.issued_at, i.due_at, "
    "i.period_start, i.period_end, i.subtotal_minor, i.discount_minor, i.credits_minor, i.tax_minor, "
    "i.total_minor, i.balance_applied_minor, i.balance_credited_minor, i.amount_due_minor, i.amount_paid_minor, "
    "i.amount_credited_minor, i.amount_due_minor - i.amount_paid_minor - i.credited_against_due_minor, "
    "i.finalized_at, i.paid_at, i.voided_at, i.uncollectible_at, i.created_at"
)
_INVOICE_AMOUNTS = range(11, 22)

_LINE_SELECT = (
    "i.id, i.number, i.status, l.id, l.position, i.customer_id, c.external_id, i.currency, l.kind, l.product, "
    "l.description, l.subscription_id, l.price_id, l.service_start, l.service_end, l.group_values, l.reference, "
    "l.sequence, l.quantity, l.explanation ->> 'unit_amount', l.amount_minor, l.amount_minor_total, "
    "l.amount_minor_billed_prior, l.provisional, i.issued_at"
)
_LINE_AMOUNTS = range(20, 23)


def _invoice_record(row: Sequence[Any], scales: dict[str, int]) -> dict[str, Any]:
    scale = scales.get(row[6], 0)
    values = [_amount(value, scale) if index in _INVOICE_AMOUNTS else _plain(value) for index, value in enumerate(row)]
    values[0] = ids.format_id(ids.INVOICE, row[0])
    values[3] = ids.format_id(ids.CUSTOMER, row[3])
    return dict(zip(INVOICE_COLUMNS, values, strict=True))


def _line_record(row: Sequence[Any], scales: dict[str, int]) -> dict[str, Any]:
    scale = scales.get(row[7], 0)
    values = [_amount(value, scale) if index in _LINE_AMOUNTS else _plain(value) for index, value in enumerate(row)]
    values[0] = ids.format_id(ids.INVOICE, row[0])
    values[3] = ids.format_id(ids.INVOICE_LINE, row[3])
    values[5] = ids.format_id(ids.CUSTOMER, row[5])
    values[11] = _subscription(row[11])
    return dict(zip(LINE_COLUMNS, values, strict=True))


def _amount(minor: int, scale: int) -> str:
    """Minor units as an exact decimal with exactly the currency's places: 123450 → "1234.50"."""
    value = Decimal(minor).scaleb(-scale)
    return f"{value:.{scale}f}"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _decimal_text(value: Decimal) -> str:
    """Every digit, never an exponent: 1E+3 → "1000", 0.0000020 → "0.000002"."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _subscription(value: str) -> str | None:
    if not value:
        return None
    try:
        return ids.format_id(ids.SUBSCRIPTION, uuid.UUID(value))
    except ValueError:
        return value


# Text a tenant's users typed: a spreadsheet must not read it as a formula (CSV injection).
_FREE_TEXT = frozenset({"customer_external_id", "customer_name", "description", "product", "reference"})
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_value(value: Any, *, guard: bool = False) -> str:
    if guard and isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _csv_row(values: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()
