"""The invoice as a PDF, drawn with fpdf2 (pure Python: no system libraries, nothing fetched).

Text is set in DejaVu Sans, shipped in `fonts/` with its licence, which covers Latin, Greek,
Cyrillic and most currency signs. When a document holds characters DejaVu lacks (Chinese, Japanese,
Korean), Droid Sans Fallback, also shipped there, supplies them. Only the glyphs used are embedded.

The output is a pure function of the document: the creation date is the issue date and nothing
else varies, so the same document always gives the same bytes (stable tests, cacheable files).
Long invoices flow over pages; the table header repeats on each, and every page is numbered.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, time
from functools import cache
from importlib import resources
from pathlib import Path

from fontTools.ttLib import TTFont
from fpdf import FPDF, FontFace, XPos, YPos
from fpdf.enums import TableBordersLayout, TableCellFillMode, TableHeadingsDisplay

from tally.adapters.documents.model import InvoiceDocument
from tally.adapters.documents.presentation import LABELS, Presentation, RowKind, present

# Layout, in millimetres and points.
_MARGIN_MM = 18
_FOOTER_MM = 12
_FAMILY = "dejavu"
_PRIMARY_FONT_FILE = "DejaVuSans.ttf"
_FALLBACK_FONT_FILE = "DroidSansFallback.ttf"
_FALLBACK_FAMILY = "cjk"
_INK = (31, 41, 51)
_MUTED = (97, 110, 124)
_RULE = (217, 226, 236)
_BAND = (241, 244, 248)
_ACCENT = (36, 59, 83)
_STATUS_COLOURS = {
    "draft": ((255, 243, 196), (141, 103, 8)),
    "open": (_BAND, _MUTED),
    "paid": ((227, 249, 229), (31, 122, 51)),
    "void": ((255, 227, 227), (166, 27, 27)),
    "uncollectible": ((255, 227, 227), (166, 27, 27)),
}
# Column widths as fractions of the page: description, service period, quantity, unit price, amount.
_COLUMN_FRACTIONS = (0.36, 0.2, 0.13, 0.15, 0.16)
# An alias no invoice text is likely to contain, replaced by the page count when the file is closed.
_PAGE_COUNT_ALIAS = "{tally-page-count}"


def render_invoice_pdf(document: InvoiceDocument) -> bytes:
    """The invoice as a PDF file."""
    page = present(document)
    pdf = _InvoicePdf(page)
    pdf.set_creation_date(datetime.combine(document.issue_date, time(0), tzinfo=UTC))
    pdf.set_title(page.title)
    pdf.set_author(page.seller.name)
    pdf.set_subject(f"{page.title} · {page.buyer.name}")
    pdf.set_creator("Tally")
    pdf.set_lang(page.language)
    pdf.add_page()
    pdf.draw()
    return bytes(pdf.output())


def font_directory() -> Path:
    """Where the shipped fonts and their licences are (inside the installed package)."""
    return Path(str(resources.files("tally.adapters.documents").joinpath("fonts")))


class _InvoicePdf(FPDF):
    def __init__(self, page: Presentation) -> None:
        super().__init__(unit="mm", format="Letter" if page.is_letter_paper else "A4")
        self.page_data = page
        self.set_margins(_MARGIN_MM, _MARGIN_MM, _MARGIN_MM)
        self.set_auto_page_break(auto=True, margin=_MARGIN_MM + _FOOTER_MM / 2)
        self.alias_nb_pages(_PAGE_COUNT_ALIAS)
        fonts = font_directory()
        self.add_font(_FAMILY, "", str(fonts / _PRIMARY_FONT_FILE))
        self.add_font(_FAMILY, "B", str(fonts / "DejaVuSans-Bold.ttf"))
        # The CJK font is large: it is read only for documents that need it.
        if _uncovered(page):
            self.add_font(_FALLBACK_FAMILY, "", str(fonts / _FALLBACK_FONT_FILE))
            self.set_fallback_fonts([_FALLBACK_FAMILY], exact_match=False)
        self.set_text_color(*_INK)
        self.set_draw_color(*_RULE)

    # fpdf2 calls header() and footer() on every page.
    def header(self) -> None:
        page = self.page_data
        if self.page_no() > 1:
            self._font(7.5, colour=_MUTED)
            self.cell(self.epw / 2, 4, page.seller.name, new_x=XPos.RIGHT, new_y=YPos.TOP)
            self.cell(self.epw / 2, 4, page.title, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.ln(4)

    def footer(self) -> None:
        page = self.page_data
        # Drawn last, over the page's content and translucent, so nothing on the page can hide it.
        if page.status in ("draft", "void"):
            self._watermark(page.status_label.upper(), _STATUS_COLOURS[page.status][1])
        self.set_y(-_MARGIN_MM)
        self._font(7.5, colour=_MUTED)
        numbering = LABELS["page"].format(page=self.page_no(), pages=_PAGE_COUNT_ALIAS)
        # Left-aligned: the page count is measured as the alias while laying out, so centring would drift.
        self.cell(self.epw, 4, f"{page.title} · {numbering}")

    def draw(self) -> None:
        self._masthead()
        self._parties()
        self._headline()
        self._lines()
        self._summary()
        self._notes()

    def _masthead(self) -> None:
        page = self.page_data
        top = self.get_y()
        column = self.epw * 0.58
        self._font(15, bold=True, colour=_ACCENT)
        self.multi_cell(column, 7, page.seller.name, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self._font(8.5, colour=_MUTED)
        for detail in page.seller.details:
            self.multi_cell(column, 4.2, detail, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        seller_bottom = self.get_y()

        right = self.l_margin + column
        width = self.epw - column
        self.set_xy(right, top)
        self._font(19, bold=True, colour=_ACCENT)
        self.multi_cell(width, 8, page.title, align="R", new_x=XPos.LEFT, new_y=YPos.NEXT)
        self.ln(1.5)
        fill, ink = _STATUS_COLOURS[page.status]
        self._font(7.5, bold=True, colour=ink)
        label = page.status_label.upper()
        badge = self.get_string_width(label) + 6
        self.set_fill_color(*fill)
        self.set_x(self.l_margin + self.epw - badge)
        self.cell(badge, 5, label, align="C", fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_fill_color(255)
        self.set_y(max(seller_bottom, self.get_y()) + 10)

    def _parties(self) -> None:
        page = self.page_data
        top = self.get_y()
        column = self.epw * 0.5
        self._font(7.5, bold=True, colour=_MUTED)
        self.cell(column, 4.5, LABELS["bill_to"].upper(), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self._font(10.5, bold=True)
        self.multi_cell(column, 5.5, page.buyer.name, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self._font(8.5, colour=_MUTED)
        for detail in page.buyer.details:
            self.multi_cell(column, 4.2, detail, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        buyer_bottom = self.get_y()

        self.set_y(top)
        label_width = self.epw * 0.22
        value_width = self.epw - column - label_width
        for label, value in page.facts:
            self.set_x(self.l_margin + column)
            self._font(8.5, colour=_MUTED)
            self.cell(label_width, 5, label, align="R", new_x=XPos.RIGHT, new_y=YPos.TOP)
            self._font(8.5, bold=True)
            self.multi_cell(value_width, 5, value, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_y(max(buyer_bottom, self.get_y()) + 8)

    def _headline(self) -> None:
        self._font(13, bold=True)
        self.multi_cell(self.epw, 7, self.page_data.headline, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(3)

    def _lines(self) -> None:
        page = self.page_data
        self._font(8.5)
        group_style = FontFace(family=_FAMILY, emphasis="B", size_pt=8.5, color=_INK, fill_color=_BAND)
        detail_style = FontFace(family=_FAMILY, emphasis="", size_pt=7.5, color=_MUTED)
        headings_style = FontFace(family=_FAMILY, emphasis="B", size_pt=7.5, color=_MUTED)
        with self.table(
            width=self.epw,
            col_widths=_COLUMN_FRACTIONS,
            text_align=("LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT"),
            borders_layout=TableBordersLayout.HORIZONTAL_LINES,
            cell_fill_mode=TableCellFillMode.NONE,
            headings_style=headings_style,
            repeat_headings=TableHeadingsDisplay.ON_TOP_OF_EVERY_PAGE,
            line_height=4.2,
            padding=(1.6, 1.5),
            v_align="TOP",
        ) as table:
            table.row([column.upper() for column in page.columns])
            for group in page.groups:
                table.row(style=group_style).cell(group.name, colspan=5, align="LEFT")
                for row in group.rows:
                    style = detail_style if row.kind is RowKind.DETAIL else None
                    cells = table.row(style=style)
                    # Breakdown rows sit indented under their line.
                    indent = (1.6, 1.5, 1.6, 6.0) if row.kind is RowKind.DETAIL else None
                    cells.cell(row.description, padding=indent)
                    cells.cell(row.service_period)
                    cells.cell(row.quantity)
                    cells.cell(row.unit_price)
                    cells.cell(row.amount)
        self.ln(4)

    def _summary(self) -> None:
        page = self.page_data
        width = self.epw * 0.5
        rows = page.summary
        # Keep the totals together: start them on a new page rather than split them.
        if self.get_y() + 6.5 * len(rows) > self.page_break_trigger:
            self.add_page()
        for row in rows:
            self.set_x(self.l_margin + self.epw - width)
            if row.is_emphasized:
                self.set_draw_color(*_INK)
                self.line(self.get_x(), self.get_y(), self.get_x() + width, self.get_y())
                self.set_draw_color(*_RULE)
            size = 10.5 if row is rows[-1] else 9
            self._font(size, bold=row.is_emphasized)
            self.cell(width * 0.6, 6.5, row.label, new_x=XPos.RIGHT, new_y=YPos.TOP)
            self.cell(width * 0.4, 6.5, row.amount, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def _notes(self) -> None:
        page = self.page_data
        if page.notes:
            self.ln(8)
            self._font(7.5, bold=True, colour=_MUTED)
            self.cell(self.epw, 5, LABELS["notes"].upper(), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self._font(9)
            for note in page.notes:
                self.multi_cell(self.epw, 4.6, note, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                self.ln(1.5)
        if page.footer:
            self.ln(8)
            self.line(self.l_margin, self.get_y(), self.l_margin + self.epw, self.get_y())
            self.ln(2)
            self._font(7.5, colour=_MUTED)
            self.multi_cell(self.epw, 3.8, page.footer, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def _watermark(self, text: str, colour: tuple[int, int, int]) -> None:
        self._font(88, bold=True, colour=colour)
        centre_x, centre_y = self.w / 2, self.h / 2
        with self.local_context(fill_opacity=0.1), self.rotation(angle=35, x=centre_x, y=centre_y):
            self.text(centre_x - self.get_string_width(text) / 2, centre_y + 11, text)

    def _font(self, size_pt: float, *, bold: bool = False, colour: tuple[int, int, int] = _INK) -> None:
        self.set_font(_FAMILY, "B" if bold else "", size_pt)
        self.set_text_color(*colour)


def unsupported_characters(document: InvoiceDocument) -> frozenset[str]:
    """Characters of the document the PDF cannot show faithfully.

    Those are characters no shipped font has (they would print as blank boxes) and right-to-left
    letters (Arabic, Hebrew), which would print unjoined and in the wrong order: the PDF writer
    does not shape text. Empty for Latin, Greek, Cyrillic, Chinese, Japanese and Korean. A caller
    can check here and offer the HTML document, which the reader's browser shapes, instead.
    """
    page = present(document)
    right_to_left = {
        character for text in page.texts() for character in text if unicodedata.bidirectional(character) in ("R", "AL")
    }
    return _uncovered(page, _FALLBACK_FONT_FILE) | right_to_left


@cache
def _characters_of(font_file: str) -> frozenset[int]:
    """The code points a shipped font has glyphs for (read once per process)."""
    font = TTFont(str(font_directory() / font_file), lazy=True)
    try:
        return frozenset(font.getBestCmap())
    finally:
        font.close()


def _uncovered(page: Presentation, *font_files: str) -> frozenset[str]:
    covered = _characters_of(_PRIMARY_FONT_FILE).union(*(_characters_of(name) for name in font_files))
    return frozenset(
        character
        for text in page.texts()
        for character in text
        if ord(character) not in covered and not character.isspace()
    )
