"""The invoice as one self-contained HTML page: inline CSS, no scripts, nothing fetched.

Every string from the document is escaped by the template engine (autoescaping is on for the
whole template, and nothing is marked safe), and the page carries a content security policy that
forbids scripts and remote resources, so even a customer named `<script>` is only text.
"""

from __future__ import annotations

from functools import cache

import jinja2

from tally.adapters.documents.model import InvoiceDocument
from tally.adapters.documents.presentation import LABELS, present


def render_invoice_html(document: InvoiceDocument) -> str:
    """The invoice as an HTML page (a complete document, UTF-8)."""
    return _template().render(page=present(document), labels=LABELS)


@cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("tally.adapters.documents", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return environment.get_template("invoice.html")
