"""An invoice as a document: a stored invoice, its customer and the tenant's invoice profile mapped
into the presentation model (`tally.adapters.documents.InvoiceDocument`), then rendered.

gather (one read transaction) → decide (`document_of`, a pure mapping) → render (HTML or PDF).

How the stored invoice reads on paper:

- lines are grouped by product (the product's name from the catalog), in the invoice's order; a
  correction line (sequence 1, 2, …) shows its amount only, since its usage breakdown describes
  the key's total, not the difference;
- discount lines become the discounts below the subtotal, one per coupon; when a coupon gives
  back more than it takes off on this invoice (a fee credited after a downgrade), the net is a
  line instead, so every figure stays non-negative where the document requires it;
- credits applied = credit grants used + the customer's balance used + credit notes against what
  was due; amount paid = manual payments; the amount due printed is what remains to be paid;
- dates are the customer's calendar dates in their timezone; a draft is dated by the moment it was
  computed through and has no due date;
- the locale is, first found: the `locale` asked for, the customer's `locale` metadata key, the
  profile's locale.
"""

from __future__ import annotations

import uuid
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Engine

from tally.adapters.documents import (
    Adjustment,
    BreakdownRow,
    InvoiceDocument,
    InvoiceLine,
    InvoiceStatus,
    Party,
    ProductGroup,
    ServicePeriod,
    TaxId,
    TaxLine,
    render_invoice_html,
    render_invoice_pdf,
)
from tally.adapters.documents.model import BREAKDOWN_ROWS_PER_LINE_MAX
from tally.adapters.postgres import customers as customer_store
from tally.adapters.postgres import invoices as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.invoice_profile import LOCALE_DEFAULT, InvoiceProfile, get_invoice_profile, require_locale
from tally.app.ledger_accounts import resolve_unit
from tally.core import money
from tally.core.customers import Address
from tally.core.invoicing import LineKind
from tally.core.rejections import Rejected

OTHER_CHARGES = "Other charges"
_BREAKDOWN_LABELS = {
    "tier": "Tier {tier}",
    "free_units": "Free units",
    "package": "Packages",
    "minimum": "Minimum",
    "maximum": "Maximum",
}


@dataclass(frozen=True, slots=True)
class StoredInvoice:
    """Everything a document is made from, read in one transaction."""

    invoice: store.InvoiceRow
    lines: tuple[store.LineRow, ...]
    customer: customer_store.CustomerRow
    unit: money.Unit
    product_names: dict[str, str]
    profile: InvoiceProfile


@dataclass(frozen=True, slots=True)
class RenderedDocument:
    content: bytes
    media_type: str
    filename: str


def load_invoice(engine: Engine, tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> StoredInvoice:
    profile = get_invoice_profile(engine, tenant_id)
    with psycopg_transaction(engine) as connection:
        invoice = store.get_invoice(connection, tenant_id, invoice_id)
        if invoice is None:
            raise Rejected.because("invoice_not_found", "no such invoice", "id")
        customer = customer_store.get_customer(connection, tenant_id, invoice.customer_id)
        if customer is None:  # pragma: no cover - a foreign key keeps the customer
            raise Rejected.because("customer_not_found", "the invoice's customer is gone", "customer")
        lines = tuple(store.lines_of(connection, invoice_id))
        codes = sorted({line.product for line in lines if line.product})
        rows = connection.execute(
            "SELECT code, name FROM products WHERE tenant_id = %s AND code = ANY(%s)", (tenant_id, codes)
        ).fetchall()
        unit = resolve_unit(connection, tenant_id, invoice.currency)
    return StoredInvoice(invoice, lines, customer, unit, {row[0]: row[1] for row in rows}, profile)


def invoice_document(
    engine: Engine, tenant_id: uuid.UUID, invoice_id: uuid.UUID, *, locale: str | None = None
) -> InvoiceDocument:
    return document_of(load_invoice(engine, tenant_id, invoice_id), locale=locale)


def render_invoice(
    engine: Engine, tenant_id: uuid.UUID, invoice_id: uuid.UUID, kind: str, *, locale: str | None = None
) -> RenderedDocument:
    """`kind` is "pdf" or "html". The file name carries the invoice number (or the id of a draft)."""
    stored = load_invoice(engine, tenant_id, invoice_id)
    document = document_of(stored, locale=locale)
    stem = document_filename_stem(stored.invoice)
    if kind == "pdf":
        return RenderedDocument(render_invoice_pdf(document), "application/pdf", f"{stem}.pdf")
    if kind == "html":
        return RenderedDocument(render_invoice_html(document).encode(), "text/html; charset=utf-8", f"{stem}.html")
    raise Rejected.because("document_format_unknown", "pdf or html", "format")


def document_filename_stem(invoice: store.InvoiceRow) -> str:
    if invoice.number is not None:
        # Numbers are tally's own (INV-000042); keep the name safe for any file system anyway.
        return "invoice-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in invoice.number)
    return f"draft-invoice-{invoice.id}"


# ----- decide: the pure mapping -------------------------------------------------------------------------


def document_of(stored: StoredInvoice, *, locale: str | None = None) -> InvoiceDocument:
    invoice, unit, profile = stored.invoice, stored.unit, stored.profile
    timezone = _timezone(stored.customer.timezone)
    chosen_locale = require_locale(locale or stored.customer.metadata.get("locale") or profile.locale or LOCALE_DEFAULT)

    def amount(minor: int) -> Decimal:
        return money.decimal_from_minor(minor, unit)

    charge_lines = [line for line in stored.lines if line.key.kind is not LineKind.DISCOUNT]
    discounts: list[Adjustment] = []
    given_back: list[store.LineRow] = []
    for coupon, coupon_lines in _by_coupon(line for line in stored.lines if line.key.kind is LineKind.DISCOUNT):
        net = sum(line.amount_minor for line in coupon_lines)
        if net <= 0:
            if net < 0:
                discounts.append(Adjustment(description=f"Discount ({coupon})", amount=amount(-net)))
        else:
            given_back.extend(coupon_lines)
    groups = _groups([*charge_lines, *given_back], stored.product_names, amount, timezone)
    subtotal_minor = sum(line.amount_minor for line in charge_lines) + sum(line.amount_minor for line in given_back)
    discount_minor = sum(_minor(d.amount, unit) for d in discounts)

    taxes = tuple(
        TaxLine(
            description=str(entry.get("name") or "Tax"),
            amount=amount(int(entry["amount_minor"])),
            rate_percent=_decimal(entry.get("percent")),
        )
        for entry in invoice.tax
        if int(entry.get("amount_minor", 0)) != 0
    )
    credits: list[Adjustment] = []
    if invoice.credits_minor:
        credits.append(Adjustment(description="Credits applied", amount=amount(invoice.credits_minor)))
    if invoice.balance_applied_minor:
        credits.append(Adjustment(description="Customer balance applied", amount=amount(invoice.balance_applied_minor)))
    if invoice.credited_against_due_minor:
        credits.append(Adjustment(description="Credit notes", amount=amount(invoice.credited_against_due_minor)))

    # The document's total is before credits (the stored total is after credit grants).
    total_minor = subtotal_minor - discount_minor + invoice.tax_minor
    due_minor = total_minor - sum(_minor(c.amount, unit) for c in credits) - invoice.amount_paid_minor
    notes = list(profile.notes)
    if invoice.balance_credited_minor:
        credited = money.decimal_from_minor(invoice.balance_credited_minor, unit)
        notes.append(f"{credited} {unit.code} is credited to the customer's balance for future invoices.")

    issued = invoice.issued_at or invoice.through
    issue_date = issued.astimezone(timezone).date()
    due_date = None if invoice.due_at is None else max(invoice.due_at.astimezone(timezone).date(), issue_date)
    return InvoiceDocument(
        seller=Party(
            name=profile.seller_name,
            email=profile.email,
            address_lines=profile.address_lines,
            tax_ids=tuple(TaxId(type=tax_id.type, value=tax_id.value) for tax_id in profile.tax_ids),
        ),
        buyer=Party(
            name=stored.customer.name,
            email=stored.customer.email,
            address_lines=address_lines(stored.customer.billing_address),
            tax_ids=tuple(TaxId(type=tax_id.type, value=tax_id.value) for tax_id in stored.customer.tax_ids),
        ),
        number=invoice.number,
        status=InvoiceStatus(invoice.status),
        issue_date=issue_date,
        due_date=due_date,
        service_period=_period(invoice.period_start, invoice.period_end, timezone),
        currency=unit,
        locale=chosen_locale,
        groups=groups,
        subtotal=amount(subtotal_minor),
        total=amount(total_minor),
        amount_due=amount(due_minor),
        amount_paid=amount(invoice.amount_paid_minor),
        discounts=tuple(discounts),
        taxes=taxes,
        credits_applied=tuple(credits),
        notes=tuple(notes),
        footer=profile.footer,
    )


def address_lines(address: Address | None) -> tuple[str, ...]:
    """A billing address in the lines it is printed in: street lines, then city, region and postal
    code (the American order for US and CA, postal code first elsewhere), then the country code."""
    if address is None:
        return ()
    lines = [text for text in (address.line1, address.line2) if text]
    if address.country in {"US", "CA"}:
        place = ", ".join(
            text for text in (address.city, " ".join(filter(None, (address.state, address.postal_code)))) if text
        )
    else:
        place = " ".join(text for text in (address.postal_code, address.city) if text)
        if address.state:
            place = f"{place}, {address.state}" if place else address.state
    if place:
        lines.append(place)
    if address.country:
        lines.append(address.country)
    return tuple(lines)


def _groups(
    lines: Sequence[store.LineRow], product_names: dict[str, str], amount: Any, timezone: zoneinfo.ZoneInfo
) -> tuple[ProductGroup, ...]:
    ordered = sorted(lines, key=lambda line: line.position)
    by_product: dict[str, list[InvoiceLine]] = {}
    for line in ordered:
        name = product_names.get(line.product) or line.product or OTHER_CHARGES
        by_product.setdefault(name, []).append(_line(line, amount, timezone))
    return tuple(ProductGroup(name=name, lines=tuple(items)) for name, items in by_product.items())


def _line(line: store.LineRow, amount: Any, timezone: zoneinfo.ZoneInfo) -> InvoiceLine:
    period = _period(line.key.service_start, line.key.service_end, timezone)
    if line.sequence > 0:
        # A correction: the difference to what was billed before; the explanation describes the total.
        return InvoiceLine(
            description=f"{line.description} (correction of earlier billing)",
            amount=amount(line.amount_minor),
            service_period=period,
        )
    explanation = line.explanation
    rating = explanation.get("rating") or {}
    breakdown = tuple(_breakdown_row(row) for row in (rating.get("breakdown") or [])[:BREAKDOWN_ROWS_PER_LINE_MAX])
    return InvoiceLine(
        description=line.description,
        amount=amount(line.amount_minor),
        quantity=line.quantity,
        unit_price=None if breakdown else _decimal(explanation.get("unit_amount")),
        service_period=period,
        breakdown=breakdown if len(breakdown) > 1 or line.key.kind is LineKind.USAGE else (),
    )


def _breakdown_row(row: dict[str, Any]) -> BreakdownRow:
    kind = str(row.get("kind", ""))
    label = _BREAKDOWN_LABELS.get(kind, kind.replace("_", " ").capitalize() or "Usage")
    return BreakdownRow(
        description=label.format(tier=row.get("tier", "")),
        amount=_decimal(row.get("amount")) or Decimal(0),
        quantity=_decimal(row.get("quantity")),
        unit_price=_decimal(row.get("unit_price")),
    )


def _by_coupon(lines: Any) -> list[tuple[str, list[store.LineRow]]]:
    found: dict[str, list[store.LineRow]] = {}
    for line in lines:
        # A discount's reference is "<coupon id>:<kind of the discounted line>".
        found.setdefault(line.key.reference.split(":", 1)[0] or "coupon", []).append(line)
    return list(found.items())


def _period(start: datetime, end: datetime, timezone: zoneinfo.ZoneInfo) -> ServicePeriod | None:
    """Half-open instants to half-open days in the customer's calendar; a period ending during a day
    covers that day."""
    first = start.astimezone(timezone)
    last = end.astimezone(timezone)
    end_day: date = last.date()
    if last.time() != datetime.min.time():
        end_day += timedelta(days=1)
    if end_day <= first.date():
        return None
    return ServicePeriod(start=first.date(), end=end_day)


def _timezone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _decimal(value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        parsed = Decimal(str(value))
    except InvalidOperation:
        return None
    return parsed if parsed.is_finite() else None


def _minor(value: Decimal, unit: money.Unit) -> int:
    return money.minor_from_decimal(value, unit)
