"""An `InvoiceDocument` turned into the strings a page shows, once, for both the HTML and the PDF.

Every number and date is formatted here, so the two renderers only lay text out and can never
disagree about what an invoice says. Labels are English for now; they live in `LABELS` so that a
translation is one mapping away.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from tally.adapters.documents.formatting import Formats
from tally.adapters.documents.model import InvoiceDocument, InvoiceLine, InvoiceStatus, Party, TaxId

LABELS = {
    "invoice": "Invoice",
    "draft_invoice": "Draft invoice",
    "invoice_number": "Invoice number",
    "issue_date": "Date of issue",
    "due_date": "Date due",
    "service_period": "Service period",
    "bill_to": "Bill to",
    "from": "From",
    "description": "Description",
    "quantity": "Qty",
    "unit_price": "Unit price",
    "amount": "Amount",
    "subtotal": "Subtotal",
    "total": "Total",
    "amount_paid": "Amount paid",
    "amount_due": "Amount due",
    "due_on": "due {date}",
    "page": "Page {page} of {pages}",
    "notes": "Notes",
    "status.draft": "Draft",
    "status.open": "Open",
    "status.paid": "Paid",
    "status.void": "Void",
    "status.uncollectible": "Uncollectible",
}


class RowKind(StrEnum):
    LINE = "line"  # an invoice line
    DETAIL = "detail"  # a usage breakdown row under its line


@dataclass(frozen=True, slots=True)
class Row:
    kind: RowKind
    description: str
    service_period: str
    quantity: str
    unit_price: str
    amount: str


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    rows: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class SummaryRow:
    label: str
    amount: str
    is_emphasized: bool = False


@dataclass(frozen=True, slots=True)
class PartyBlock:
    name: str
    details: tuple[str, ...]  # address lines, then email, then tax ids


@dataclass(frozen=True, slots=True)
class Presentation:
    language: str  # BCP 47, for <html lang> and the PDF's language
    title: str  # "Invoice INV-0042" or "Draft invoice"
    number: str  # the number, or "" for a draft
    status: str  # the status code, for styling
    status_label: str
    seller: PartyBlock
    buyer: PartyBlock
    facts: tuple[tuple[str, str], ...]  # (label, value) for the header: number, dates, period
    headline: str  # "$1,234.50 due January 31, 2026"
    columns: tuple[str, str, str, str, str]
    groups: tuple[Group, ...]
    summary: tuple[SummaryRow, ...]
    notes: tuple[str, ...]
    footer: str
    is_letter_paper: bool

    def texts(self) -> set[str]:
        """Every string the page can show, so a renderer can check it has glyphs for all of them."""
        texts = {self.title, self.status_label, self.headline, self.footer, *self.columns, *self.notes}
        for block in (self.seller, self.buyer):
            texts |= {block.name, *block.details}
        texts |= {text for fact in self.facts for text in fact}
        for group in self.groups:
            texts.add(group.name)
            for row in group.rows:
                texts |= {row.description, row.service_period, row.quantity, row.unit_price, row.amount}
        texts |= {text for row in self.summary for text in (row.label, row.amount)}
        texts |= {LABELS["bill_to"], LABELS["from"], LABELS["notes"], LABELS["page"]}
        return texts


# CLDR territories that print on US Letter; everywhere else uses A4.
_LETTER_TERRITORIES = frozenset({"US", "CA", "MX", "PH", "CL", "CO", "VE", "GT", "PR"})


def present(document: InvoiceDocument) -> Presentation:
    formats = Formats(document.locale, document.currency)
    status_label = LABELS[f"status.{document.status.value}"]
    number = _line(document.number) if document.number is not None else ""
    title = f"{LABELS['invoice']} {number}" if number else LABELS["draft_invoice"]

    facts: list[tuple[str, str]] = []
    if number:
        facts.append((LABELS["invoice_number"], number))
    facts.append((LABELS["issue_date"], formats.long_date(document.issue_date)))
    if document.due_date is not None:
        facts.append((LABELS["due_date"], formats.long_date(document.due_date)))
    if document.service_period is not None:
        facts.append(
            (LABELS["service_period"], formats.period(document.service_period.start, document.service_period.end))
        )

    amount_due = formats.money(document.amount_due)
    if document.due_date is not None and document.status is InvoiceStatus.OPEN:
        headline = f"{amount_due} {LABELS['due_on'].format(date=formats.long_date(document.due_date))}"
    else:
        headline = f"{LABELS['amount_due']}: {amount_due}"

    groups = tuple(
        Group(name=_line(group.name), rows=tuple(row for line in group.lines for row in _rows(line, formats)))
        for group in document.groups
    )

    summary = [SummaryRow(LABELS["subtotal"], formats.money(document.subtotal))]
    summary += [SummaryRow(_line(item.description), formats.money(-item.amount)) for item in document.discounts]
    for tax in document.taxes:
        label = _line(tax.description)
        if tax.rate_percent is not None:
            label = f"{label} ({formats.percent(tax.rate_percent)})"
        summary.append(SummaryRow(label, formats.money(tax.amount)))
    summary.append(SummaryRow(LABELS["total"], formats.money(document.total), is_emphasized=True))
    summary += [SummaryRow(_line(item.description), formats.money(-item.amount)) for item in document.credits_applied]
    if document.amount_paid:
        summary.append(SummaryRow(LABELS["amount_paid"], formats.money(-document.amount_paid)))
    summary.append(SummaryRow(LABELS["amount_due"], amount_due, is_emphasized=True))

    locale = formats.locale
    return Presentation(
        language=locale.language if locale.territory is None else f"{locale.language}-{locale.territory}",
        title=title,
        number=number,
        status=document.status.value,
        status_label=status_label,
        seller=_party(document.seller),
        buyer=_party(document.buyer),
        facts=tuple(facts),
        headline=headline,
        columns=(
            LABELS["description"],
            LABELS["service_period"],
            LABELS["quantity"],
            LABELS["unit_price"],
            LABELS["amount"],
        ),
        groups=groups,
        summary=tuple(summary),
        notes=tuple(_paragraph(note) for note in document.notes),
        footer=_paragraph(document.footer) if document.footer is not None else "",
        is_letter_paper=locale.territory in _LETTER_TERRITORIES,
    )


def _rows(line: InvoiceLine, formats: Formats) -> list[Row]:
    period = line.service_period
    rows = [
        Row(
            kind=RowKind.LINE,
            description=_line(line.description),
            service_period="" if period is None else formats.period(period.start, period.end),
            quantity="" if line.quantity is None else formats.quantity(line.quantity),
            unit_price="" if line.unit_price is None else formats.exact_money(line.unit_price),
            amount=formats.money(line.amount),
        )
    ]
    rows += [
        Row(
            kind=RowKind.DETAIL,
            description=_line(step.description),
            service_period="",
            quantity="" if step.quantity is None else formats.quantity(step.quantity),
            unit_price="" if step.unit_price is None else formats.exact_money(step.unit_price),
            amount=formats.exact_money(step.amount),
        )
        for step in line.breakdown
    ]
    return rows


def _party(party: Party) -> PartyBlock:
    details = [_line(text) for text in party.address_lines]
    if party.email is not None:
        details.append(_line(party.email))
    details += [_tax_id(tax_id) for tax_id in party.tax_ids]
    return PartyBlock(name=_line(party.name), details=tuple(details))


def _tax_id(tax_id: TaxId) -> str:
    # "eu_vat" reads "EU VAT"; a label given already spelled out ("VAT") stays as it is.
    return f"{_line(tax_id.type.replace('_', ' ').upper())} {_line(tax_id.value)}"


def _line(text: str) -> str:
    """Text for one line: control characters and line breaks become spaces."""
    return "".join(" " if unicodedata.category(character) == "Cc" else character for character in text).strip()


def _paragraph(text: str) -> str:
    """Text that may span lines: line breaks stay, other control characters become spaces."""
    cleaned = "".join(
        character if character == "\n" or unicodedata.category(character) != "Cc" else " " for character in text
    )
    return cleaned.strip()
