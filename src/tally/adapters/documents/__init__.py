"""Invoice documents: an invoice as an HTML page or a PDF file, amounts and dates per locale.

Independent of how invoices are stored: callers build an `InvoiceDocument` (the presentation model
in `model.py`) and render it. Nothing here touches the network, the clock or the database.
"""

from tally.adapters.documents.html_renderer import render_invoice_html
from tally.adapters.documents.model import (
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
)
from tally.adapters.documents.pdf_renderer import render_invoice_pdf, unsupported_characters

__all__ = [
    "Adjustment",
    "BreakdownRow",
    "InvoiceDocument",
    "InvoiceLine",
    "InvoiceStatus",
    "Party",
    "ProductGroup",
    "ServicePeriod",
    "TaxId",
    "TaxLine",
    "render_invoice_html",
    "render_invoice_pdf",
    "unsupported_characters",
]
