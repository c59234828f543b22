"""Invoices in PostgreSQL (migration 0010): drafts and finalized invoices, their lines, payments,
credit notes, the per-tenant number counter, the billing run's per-customer cache, and tax rates.

Lines are the core's `InvoiceLine`s, one row each, keyed by the core's `LineKey` and sequence under
the UNIQUE constraint that makes billing one thing twice impossible. Postings decided with a draft
are stored as JSON and read back as the core's `Posting`s. The rules live in tally.core.invoicing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar

import psycopg

from tally.adapters.pagination import Page, PageRequest
from tally.adapters.postgres import jsonb
from tally.adapters.postgres.copy_cells import CopyCells
from tally.adapters.postgres.pagination import keyset_rows
from tally.core.invoicing import BilledLine, InvoiceLine, LineKey, LineKind, TaxLine
from tally.core.ledger.model import Direction
from tally.core.ledger.templates import AccountRef, Posting, TemplateEntry

Connection = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class InvoiceRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    customer_id: uuid.UUID
    currency: str
    status: str
    number: str | None
    through: datetime
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
    credited_against_due_minor: int
    tax: list[dict[str, Any]]
    creditable: list[list[Any]]
    postings: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime
    issued_at: datetime | None
    due_at: datetime | None
    finalized_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    uncollectible_at: datetime | None
    # `period` (the billing run's draft), `threshold` (issued at once: usage passed a threshold) or
    # `late_usage` (the extra invoice of late usage under the `separate` policy).
    billing_reason: str = "period"

    @property
    def amount_remaining_minor(self) -> int:
        return self.amount_due_minor - self.amount_paid_minor - self.credited_against_due_minor


INVOICE_COLUMNS = (
    "id, tenant_id, customer_id, currency, status, number, through, period_start, period_end, subtotal_minor, "
    "discount_minor, credits_minor, tax_minor, total_minor, balance_applied_minor, balance_credited_minor, "
    "amount_due_minor, amount_paid_minor, amount_credited_minor, credited_against_due_minor, tax, creditable, "
    "postings, created_at, updated_at, issued_at, due_at, finalized_at, paid_at, voided_at, uncollectible_at, "
    "billing_reason"
)


@dataclass(frozen=True, slots=True)
class LineRow:
    id: uuid.UUID
    invoice_id: uuid.UUID
    key: LineKey
    sequence: int
    position: int
    amount_minor: int
    amount_minor_total: int
    amount_minor_billed_prior: int
    quantity: Decimal | None
    product: str
    description: str
    due_at: datetime
    provisional: bool
    explanation: dict[str, Any]
    # When the line was written: the moment its customer was billed through (the customer's clock).
    created_at: datetime


LINE_COLUMNS = (
    "id, invoice_id, subscription_id, price_id, service_start, service_end, group_values, kind, reference, sequence, "
    "position, amount_minor, amount_minor_total, amount_minor_billed_prior, quantity, product, description, due_at, "
    "provisional, explanation, created_at"
)


def _line(row: Sequence[Any]) -> LineRow:
    key = LineKey(row[2], row[3], row[4], row[5], tuple(row[6]), LineKind(row[7]), row[8])
    return LineRow(row[0], row[1], key, *row[9:])


# ----- locks and counters ---------------------------------------------------------------------------


def lock_customer(connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> None:
    """Serialize everything that bills or settles one customer, until the transaction ends."""
    connection.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('tally.invoicing.customer:' || %s::text || ':' || %s::text, 0))",
        (tenant_id, customer_id),
    )


def next_invoice_number(connection: Connection, tenant_id: uuid.UUID) -> int:
    """The tenant's next invoice number. The counter row stays locked until the caller's transaction
    ends, and a rollback gives the number back: the sequence has no gaps."""
    row = connection.execute(
        """INSERT INTO invoice_number_counters (tenant_id, last_number) VALUES (%s, 1)
           ON CONFLICT (tenant_id) DO UPDATE SET last_number = invoice_number_counters.last_number + 1
           RETURNING last_number""",
        (tenant_id,),
    ).fetchone()
    if row is None:  # pragma: no cover - RETURNING always answers
        raise RuntimeError("no invoice number")
    return int(row[0])


# ----- invoices ---------------------------------------------------------------------------------------


def get_invoice(
    connection: Connection, tenant_id: uuid.UUID, invoice_id: uuid.UUID, *, for_update: bool = False
) -> InvoiceRow | None:
    lock = " FOR UPDATE" if for_update else ""
    row = connection.execute(
        f"SELECT {INVOICE_COLUMNS} FROM invoices WHERE tenant_id = %s AND id = %s{lock}", (tenant_id, invoice_id)
    ).fetchone()
    return InvoiceRow(*row) if row else None


def draft_of(
    connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID, currency: str, billing_reason: str = "period"
) -> InvoiceRow | None:
    """The customer's draft of that reason: `period` (the billing run's) or `late_usage` (the extra
    invoice of late usage). A threshold invoice is a draft only inside the transaction that
    finalizes it."""
    row = connection.execute(
        f"""SELECT {INVOICE_COLUMNS} FROM invoices
            WHERE tenant_id = %s AND customer_id = %s AND currency = %s AND status = 'draft'
              AND billing_reason = %s""",
        (tenant_id, customer_id, currency, billing_reason),
    ).fetchone()
    return InvoiceRow(*row) if row else None


def list_invoices(
    connection: Connection,
    tenant_id: uuid.UUID,
    page: PageRequest,
    *,
    customer_id: uuid.UUID | None = None,
    status: str | None = None,
) -> Page[InvoiceRow]:
    """Newest first (ids are UUIDv7)."""
    filters = ["tenant_id = %(tenant_id)s"]
    parameters: dict[str, Any] = {"tenant_id": tenant_id}
    if customer_id is not None:
        filters.append("customer_id = %(customer_id)s")
        parameters["customer_id"] = customer_id
    if status is not None:
        filters.append("status = %(status)s")
        parameters["status"] = status
    rows, has_more = keyset_rows(connection, "invoices", INVOICE_COLUMNS, filters, parameters, page)
    return Page(items=[InvoiceRow(*row) for row in rows], has_more=has_more, backwards=page.backwards)


@dataclass(frozen=True, slots=True, kw_only=True)
class DraftFields:
    """What a proposal decides about a draft besides its lines."""

    through: datetime
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
    tax: list[dict[str, Any]]
    creditable: list[list[Any]]
    postings: list[dict[str, Any]]

    def parameters(self) -> dict[str, Any]:
        return {
            "through": self.through,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "subtotal_minor": self.subtotal_minor,
            "discount_minor": self.discount_minor,
            "credits_minor": self.credits_minor,
            "tax_minor": self.tax_minor,
            "total_minor": self.total_minor,
            "balance_applied_minor": self.balance_applied_minor,
            "balance_credited_minor": self.balance_credited_minor,
            "amount_due_minor": self.amount_due_minor,
            "tax": jsonb.dumps(self.tax),
            "creditable": jsonb.dumps(self.creditable),
            "postings": jsonb.dumps(self.postings),
        }


_DRAFT_FIELDS = (
    "through, period_start, period_end, subtotal_minor, discount_minor, credits_minor, tax_minor, total_minor, "
    "balance_applied_minor, balance_credited_minor, amount_due_minor, tax, creditable, postings"
)


def insert_draft(
    connection: Connection,
    *,
    invoice_id: uuid.UUID,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    currency: str,
    fields: DraftFields,
    now: datetime,
    billing_reason: Literal["period", "late_usage", "threshold"] = "period",
) -> None:
    names = _DRAFT_FIELDS.split(", ")
    connection.execute(
        f"""INSERT INTO invoices (id, tenant_id, customer_id, currency, status, created_at, updated_at, billing_reason,
                                  {_DRAFT_FIELDS})
            VALUES (%(id)s, %(tenant_id)s, %(customer_id)s, %(currency)s, 'draft', %(now)s, %(now)s,
                    %(billing_reason)s, {", ".join(f"%({name})s" for name in names)})""",
        {
            "id": invoice_id,
            "billing_reason": billing_reason,
            "tenant_id": tenant_id,
            "customer_id": customer_id,
            "currency": currency,
            "now": now,
            **fields.parameters(),
        },
    )


def update_draft(connection: Connection, invoice_id: uuid.UUID, fields: DraftFields, now: datetime) -> None:
    names = _DRAFT_FIELDS.split(", ")
    connection.execute(
        f"""UPDATE invoices SET {", ".join(f"{name} = %({name})s" for name in names)}, updated_at = %(now)s
            WHERE id = %(id)s AND status = 'draft'""",
        {"id": invoice_id, "now": now, **fields.parameters()},
    )


def delete_draft(connection: Connection, invoice_id: uuid.UUID) -> None:
    connection.execute("DELETE FROM invoice_lines WHERE invoice_id = %s", (invoice_id,))
    connection.execute("DELETE FROM invoices WHERE id = %s AND status = 'draft'", (invoice_id,))


def delete_draft_lines(connection: Connection, invoice_id: uuid.UUID) -> None:
    connection.execute("DELETE FROM invoice_lines WHERE invoice_id = %s", (invoice_id,))


@dataclass(frozen=True, slots=True, kw_only=True)
class Settlement:
    """A lifecycle step's new status and amounts, with the moment each status was reached."""

    status: str
    amount_paid_minor: int
    amount_credited_minor: int
    credited_against_due_minor: int
    creditable: list[list[Any]]
    now: datetime


def close_usage_through(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, invoice_id: uuid.UUID, now: datetime
) -> None:
    """Record, for ingest, how far this invoice's customer has had usage invoiced: the latest end of
    its usage lines (never moving back). Ingest then answers `late: true` for an event before it and
    records it in `late_usage`. Provisional lines (a threshold invoice's usage so far of a period
    still under way) close nothing: the period's events are still on time. Does not commit."""
    connection.execute(
        """
        INSERT INTO usage_closures (tenant_id, customer, closed_through, updated_at)
        SELECT i.tenant_id, c.external_id, max(l.service_end), %(now)s
        FROM invoices i
        JOIN customers c ON c.tenant_id = i.tenant_id AND c.id = i.customer_id
        JOIN invoice_lines l ON l.tenant_id = i.tenant_id AND l.invoice_id = i.id AND l.kind = 'usage'
                                 AND NOT l.provisional
        WHERE i.tenant_id = %(tenant)s AND i.id = %(invoice)s
        GROUP BY i.tenant_id, c.external_id
        ON CONFLICT (tenant_id, customer) DO UPDATE
            SET closed_through = greatest(usage_closures.closed_through, excluded.closed_through),
                updated_at = excluded.updated_at
        """,
        {"tenant": tenant_id, "invoice": invoice_id, "now": now},
    )


def finalize_invoice(
    connection: Connection,
    invoice_id: uuid.UUID,
    *,
    status: str,
    number: str,
    issued_at: datetime,
    due_at: datetime,
    now: datetime,
) -> None:
    connection.execute(
        """UPDATE invoices SET status = %s, number = %s, issued_at = %s, due_at = %s, finalized_at = %s,
                  paid_at = CASE WHEN %s = 'paid' THEN %s END, updated_at = %s
           WHERE id = %s AND status = 'draft'""",
        (status, number, issued_at, due_at, now, status, now, now, invoice_id),
    )


def settle_invoice(connection: Connection, invoice_id: uuid.UUID, settlement: Settlement) -> None:
    connection.execute(
        """UPDATE invoices SET status = %(status)s, amount_paid_minor = %(paid)s, amount_credited_minor = %(credited)s,
                  credited_against_due_minor = %(against_due)s, creditable = %(creditable)s,
                  paid_at = CASE WHEN %(status)s = 'paid' AND status <> 'paid' THEN %(now)s ELSE paid_at END,
                  voided_at = CASE WHEN %(status)s = 'void' THEN %(now)s ELSE voided_at END,
                  uncollectible_at = CASE WHEN %(status)s = 'uncollectible' THEN %(now)s ELSE uncollectible_at END,
                  updated_at = %(now)s
           WHERE id = %(id)s""",
        {
            "id": invoice_id,
            "status": settlement.status,
            "paid": settlement.amount_paid_minor,
            "credited": settlement.amount_credited_minor,
            "against_due": settlement.credited_against_due_minor,
            "creditable": jsonb.dumps(settlement.creditable),
            "now": settlement.now,
        },
    )


# ----- lines ------------------------------------------------------------------------------------------


# The columns of an `invoice_lines` row as it is written, in the order `line_row` answers them.
LINE_INSERT_COLUMNS = (
    "id, tenant_id, invoice_id, customer_id, currency, subscription_id, price_id, service_start, service_end, "
    "group_values, kind, reference, sequence, position, amount_minor, amount_minor_total, amount_minor_billed_prior, "
    "quantity, product, description, due_at, provisional, explanation, created_at"
)


def line_row(
    line: InvoiceLine,
    *,
    line_id: uuid.UUID,
    position: int,
    tenant_id: uuid.UUID,
    invoice_id: uuid.UUID,
    customer_id: uuid.UUID,
    currency: str,
    now: datetime,
    cells: CopyCells,
) -> tuple[Any, ...]:
    """One draft line as an `invoice_lines` row in `LINE_INSERT_COLUMNS` order, as the billing run's
    COPY (`billing_batches.insert_lines`) writes it: the cells that repeat across rows (ids of
    the tenant, invoice and customer, moments) as text from `cells`, the COPY's memo."""
    return (
        line_id,
        cells.id(tenant_id),
        cells.id(invoice_id),
        cells.id(customer_id),
        currency,
        *_key_cells(line, cells.moment),
        position,
        *_amount_cells(line),
        cells.moment(line.due_at),
        line.billed().provisional,
        jsonb.dumps(line.explanation.document()),
        cells.moment(now),
    )


def _same(moment: datetime) -> datetime:
    return moment


def _key_cells(line: InvoiceLine, moment: Callable[[datetime], Any] = _same) -> tuple[Any, ...]:
    """A line's key and sequence as row cells (invoice lines and credit-note lines alike); `moment`
    turns the service period's bounds into cells (as they are, by default)."""
    key = line.key
    return (
        key.subscription_id,
        key.price_id,
        moment(key.service_start),
        moment(key.service_end),
        jsonb.dumps(key.group),
        key.kind.value,
        key.reference,
        line.sequence,
    )


def _amount_cells(line: InvoiceLine) -> tuple[Any, ...]:
    """A line's amounts, quantity and labels as row cells (invoice lines and credit-note lines alike)."""
    return (
        line.amount_minor,
        line.amount_minor_total,
        line.amount_minor_billed_prior,
        line.explanation.quantity,
        line.product,
        line.description,
    )


def lines_of(connection: Connection, invoice_id: uuid.UUID) -> list[LineRow]:
    rows = connection.execute(
        f"SELECT {LINE_COLUMNS} FROM invoice_lines WHERE invoice_id = %s ORDER BY position", (invoice_id,)
    ).fetchall()
    return [_line(row) for row in rows]


def get_line(connection: Connection, tenant_id: uuid.UUID, invoice_id: uuid.UUID, line_id: uuid.UUID) -> LineRow | None:
    row = connection.execute(
        f"SELECT {LINE_COLUMNS} FROM invoice_lines WHERE tenant_id = %s AND invoice_id = %s AND id = %s",
        (tenant_id, invoice_id, line_id),
    ).fetchone()
    return _line(row) if row else None


def billed_lines(
    connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID, currency: str
) -> list[BilledLine]:
    """Every line of the customer's finalized invoices in `currency` (drafts are recomputed, not
    reconciled; void invoices stay billed: a void forgives, it does not ask to bill again), and every
    line a late-usage credit note carries (credited is billed: negative)."""
    rows = connection.execute(
        f"""SELECT {BILLED_LINE_COLUMNS} FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id
            WHERE l.tenant_id = %(tenant)s AND l.customer_id = %(customer)s AND l.currency = %(currency)s
              AND i.status <> 'draft'
            UNION ALL
            SELECT {CREDITED_LINE_COLUMNS} FROM credit_note_lines l
            WHERE l.tenant_id = %(tenant)s AND l.customer_id = %(customer)s AND l.currency = %(currency)s""",
        {"tenant": tenant_id, "customer": customer_id, "currency": currency},
    ).fetchall()
    return [billed_line(row) for row in rows]


# Billed lines as `billed_line` reads them, from invoice lines and from credit note lines.
BILLED_LINE_COLUMNS = (
    "l.subscription_id, l.price_id, l.service_start, l.service_end, l.group_values, l.kind, l.reference, "
    "l.sequence, l.amount_minor, l.provisional, l.invoice_id"
)
CREDITED_LINE_COLUMNS = (
    "l.subscription_id, l.price_id, l.service_start, l.service_end, l.group_values, l.kind, l.reference, "
    "l.sequence, l.amount_minor, false, NULL::uuid"
)


def billed_line(row: Sequence[Any]) -> BilledLine:
    return BilledLine(
        key=LineKey(row[0], row[1], row[2], row[3], tuple(row[4]), LineKind(row[5]), row[6]),
        sequence=row[7],
        amount_minor=row[8],
        provisional=row[9],
        invoice_id="" if row[10] is None else str(row[10]),
    )


def insert_credit_note_lines(
    connection: Connection,
    tenant_id: uuid.UUID,
    *,
    credit_note_id: uuid.UUID,
    customer_id: uuid.UUID,
    currency: str,
    lines: Sequence[InvoiceLine],
    line_ids: Sequence[uuid.UUID],
    now: datetime,
) -> None:
    """The late-usage lines a credit note carries (migration 0013). A key and sequence already on an
    invoice line, or on another credit note, is refused by the database."""
    with (
        connection.cursor() as cursor,
        cursor.copy(
            """COPY credit_note_lines (id, tenant_id, credit_note_id, customer_id, currency, subscription_id, price_id,
                   service_start, service_end, group_values, kind, reference, sequence, amount_minor,
                   amount_minor_total, amount_minor_billed_prior, quantity, product, description, explanation,
                   created_at) FROM STDIN"""
        ) as copy,
    ):
        for line, line_id in zip(lines, line_ids, strict=True):
            copy.write_row(
                (
                    line_id,
                    tenant_id,
                    credit_note_id,
                    customer_id,
                    currency,
                    *_key_cells(line),
                    *_amount_cells(line),
                    jsonb.dumps(line.explanation.document()),
                    now,
                )
            )


# ----- payments and credit notes ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentRow:
    id: uuid.UUID
    invoice_id: uuid.UUID
    amount_minor: int
    applied_minor: int
    overpaid_minor: int
    method: str
    reference: str
    received_at: datetime
    recorded_at: datetime
    ledger_transaction_id: uuid.UUID


def insert_payment(
    connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID, currency: str, payment: PaymentRow
) -> None:
    _insert_invoice_record(
        connection,
        "invoice_payments",
        _record_values(payment),
        tenant_id=tenant_id,
        customer_id=customer_id,
        currency=currency,
    )


def payments_of(connection: Connection, invoice_id: uuid.UUID) -> list[PaymentRow]:
    return _invoice_records(connection, "invoice_payments", PaymentRow, invoice_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditNoteRow:
    id: uuid.UUID
    invoice_id: uuid.UUID
    amount_minor: int
    against_due_minor: int
    to_balance_minor: int
    reason: str
    memo: str
    by_account: list[list[Any]]
    issued_at: datetime
    ledger_transaction_id: uuid.UUID


def insert_credit_note(
    connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID, currency: str, note: CreditNoteRow
) -> None:
    values = {**_record_values(note), "by_account": jsonb.dumps(note.by_account)}
    _insert_invoice_record(
        connection, "credit_notes", values, tenant_id=tenant_id, customer_id=customer_id, currency=currency
    )


def credit_notes_of(connection: Connection, invoice_id: uuid.UUID) -> list[CreditNoteRow]:
    return _invoice_records(connection, "credit_notes", CreditNoteRow, invoice_id)


# Payments and credit notes are stored one column per field of their row type, under the field's
# name, with the invoice's tenant, customer and currency copied beside them.
_InvoiceRecord = TypeVar("_InvoiceRecord", PaymentRow, CreditNoteRow)
_InvoiceRecordTable = Literal["invoice_payments", "credit_notes"]


def _record_values(record: PaymentRow | CreditNoteRow) -> dict[str, Any]:
    return {field.name: getattr(record, field.name) for field in fields(record)}


def _insert_invoice_record(
    connection: Connection,
    table: _InvoiceRecordTable,
    values: dict[str, Any],
    *,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    currency: str,
) -> None:
    row = {"tenant_id": tenant_id, "customer_id": customer_id, "currency": currency, **values}
    connection.execute(
        f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(f'%({name})s' for name in row)})",
        row,
    )


def _invoice_records(
    connection: Connection, table: _InvoiceRecordTable, row_type: type[_InvoiceRecord], invoice_id: uuid.UUID
) -> list[_InvoiceRecord]:
    """The invoice's records oldest first (ids are UUIDv7)."""
    names = [field.name for field in fields(row_type)]
    rows = connection.execute(
        f"SELECT {', '.join(names)} FROM {table} WHERE invoice_id = %s ORDER BY id", (invoice_id,)
    ).fetchall()
    return [row_type(**dict(zip(names, row, strict=True))) for row in rows]


# ----- the billing run's per-customer cache ---------------------------------------------------------


def record_customer_run(
    connection: Connection,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    *,
    billed_through: datetime,
    next_run_at: datetime | None,
    now: datetime,
) -> None:
    """Never moves `billed_through` backwards (a run with an older clock reading changes nothing)."""
    connection.execute(
        """INSERT INTO customer_billing (tenant_id, customer_id, billed_through, next_run_at, updated_at)
           VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (tenant_id, customer_id) DO UPDATE
               SET billed_through = EXCLUDED.billed_through, next_run_at = EXCLUDED.next_run_at,
                   updated_at = EXCLUDED.updated_at
               WHERE customer_billing.billed_through <= EXCLUDED.billed_through""",
        (tenant_id, customer_id, billed_through, next_run_at, now),
    )


# ----- tax rates and balances -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaxRateRow:
    id: uuid.UUID
    customer_id: uuid.UUID | None
    product: str | None
    name: str
    jurisdiction: str
    percent: Decimal


def tax_rates_of(connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> list[TaxRateRow]:
    """The customer's own rates, or the tenant's defaults when it has none."""
    rows = connection.execute(
        """SELECT id, customer_id, product, name, jurisdiction, percent FROM tax_rates
           WHERE tenant_id = %s AND (customer_id = %s OR customer_id IS NULL) ORDER BY id""",
        (tenant_id, customer_id),
    ).fetchall()
    found = [TaxRateRow(*row) for row in rows]
    own = [rate for rate in found if rate.customer_id is not None]
    return own or found


def insert_tax_rate(
    connection: Connection,
    *,
    rate_id: uuid.UUID,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID | None,
    product: str | None,
    name: str,
    percent: Decimal,
    now: datetime,
) -> None:
    connection.execute(
        """INSERT INTO tax_rates (id, tenant_id, customer_id, product, name, percent, recorded_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (rate_id, tenant_id, customer_id, product, name, percent, now),
    )


def account_balance(
    connection: Connection, tenant_id: uuid.UUID, code: str, unit_code: str, customer: str | None
) -> int:
    """An account's posted balance on its normal side (0 when the account does not exist yet)."""
    row = connection.execute(
        """SELECT CASE WHEN normal_balance = 'credit' THEN credits_posted - debits_posted
                       ELSE debits_posted - credits_posted END
           FROM ledger_accounts
           WHERE tenant_id = %s AND code = %s AND unit_code = %s AND coalesce(customer_id, '') = coalesce(%s, '')""",
        (tenant_id, code, unit_code, customer),
    ).fetchone()
    return int(row[0]) if row else 0


# ----- postings and tax as JSON ----------------------------------------------------------------------


def encode_posting(posting: Posting) -> dict[str, Any]:
    return {
        "template": posting.template,
        "description": posting.description,
        "metadata": [[name, value] for name, value in posting.metadata],
        "entries": [
            {
                "code": entry.account.code,
                "unit": entry.account.unit_code,
                "customer": entry.account.customer_id,
                "direction": entry.direction.value,
                "amount": entry.amount,
            }
            for entry in posting.entries
        ],
    }


def decode_posting(document: dict[str, Any]) -> Posting:
    return Posting(
        template=document["template"],
        description=document["description"],
        metadata=tuple((name, value) for name, value in document["metadata"]),
        entries=tuple(
            TemplateEntry(
                AccountRef(entry["code"], entry["unit"], entry["customer"]),
                Direction(entry["direction"]),
                int(entry["amount"]),
            )
            for entry in document["entries"]
        ),
    )


def encode_tax(line: TaxLine) -> dict[str, Any]:
    return {
        "rate_id": line.rate.rate_id,
        "name": line.rate.name,
        "percent": str(line.rate.percent),
        "jurisdiction": line.rate.jurisdiction,
        "taxable_minor": line.taxable_minor,
        "amount_minor": line.amount_minor,
    }


def price_products(
    connection: Connection, tenant_id: uuid.UUID, price_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The product code of each catalog price (what its revenue is booked under)."""
    rows = connection.execute(
        """SELECT p.id, pr.code FROM prices p JOIN products pr ON pr.tenant_id = p.tenant_id AND pr.id = p.product_id
           WHERE p.tenant_id = %s AND p.id = ANY(%s)""",
        (tenant_id, list(price_ids)),
    ).fetchall()
    return {row[0]: row[1] for row in rows}
