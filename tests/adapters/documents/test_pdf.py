"""The PDF invoice: a valid file whose text reads back, Unicode throughout, paginated, deterministic,
rendered offline, with its fonts shipped inside the package."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import tomllib
from decimal import Decimal
from fnmatch import fnmatch

import pypdf
import pytest

from tally.adapters.documents import InvoiceStatus, Party, render_invoice_pdf, unsupported_characters
from tally.adapters.documents.pdf_renderer import font_directory
from tally.core.money import currency

from .support import ROOT, one_line_document, sample_document

NBSP = "\u00a0"


@pytest.fixture(scope="module")
def sample_pdf() -> bytes:
    return render_invoice_pdf(sample_document())


@pytest.fixture(scope="module")
def sample_text(sample_pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(sample_pdf)).pages)


def test_it_is_a_pdf(sample_pdf: bytes) -> None:
    assert sample_pdf.startswith(b"%PDF-")
    assert sample_pdf.rstrip().endswith(b"%%EOF")
    reader = pypdf.PdfReader(io.BytesIO(sample_pdf))
    assert len(reader.pages) == 1
    assert reader.metadata is not None
    assert reader.metadata.title == "Invoice INV-2026-0042"
    assert reader.metadata.author == "Acme AI, Inc."


def test_the_text_reads_back(sample_text: str) -> None:
    for text in (
        "INV-2026-0042",
        "Zoë Müller 株式会社",  # Latin-1 and CJK, through the fallback font
        "$1,234.50 due March 3, 2026",
        "Team plan seats",
        "Above 1,000,000",
        "$0.002",
        "-$150.00",
        "Sales tax (8.5%)",
        "-$230.25",
        "Page 1 of 1",
    ):
        assert text in sample_text, text


@pytest.mark.parametrize(
    ("locale", "code", "amount", "expected"),
    [
        ("de_DE", "EUR", "1234.50", f"1.234,50{NBSP}€"),
        ("en_IN", "INR", "1234567.50", "₹12,34,567.50"),
    ],
)
def test_amounts_follow_the_locale(locale: str, code: str, amount: str, expected: str) -> None:
    document = one_line_document(locale=locale, unit=currency(code), amount=Decimal(amount))
    reader = pypdf.PdfReader(io.BytesIO(render_invoice_pdf(document)))
    text = reader.pages[0].extract_text()
    # Text extraction may turn the no-break space into a plain one; the glyphs are what matter.
    assert expected in text or expected.replace(NBSP, " ") in text


def test_the_fallback_font_is_embedded_only_when_needed(sample_pdf: bytes) -> None:
    latin = render_invoice_pdf(one_line_document(locale="en_US", unit=currency("USD"), amount=Decimal(1)))
    assert b"DroidSansFallback" not in latin
    assert b"DejaVuSans" in latin
    assert b"DroidSansFallback" in sample_pdf


def test_the_shipped_fonts_cover_latin_cyrillic_greek_and_cjk_but_not_joined_scripts() -> None:
    covered = sample_document(buyer=Party(name="Zoë Müller · Žluťoučký · Ωμέγα · Иванов · 株式会社 · 한국어 · €₹£¥"))
    assert unsupported_characters(covered) == frozenset()
    for name in ("شركة", "חברה", "कंपनी", "บริษัท"):
        assert unsupported_characters(sample_document(buyer=Party(name=name))) == frozenset(name)


def test_a_long_invoice_flows_over_numbered_pages_with_the_header_repeated() -> None:
    document = one_line_document(locale="en_US", unit=currency("USD"), amount=Decimal("1.25"), lines=300)
    reader = pypdf.PdfReader(io.BytesIO(render_invoice_pdf(document)))
    pages = [page.extract_text() for page in reader.pages]
    assert len(pages) >= 5
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in text
        assert "DESCRIPTION" in text
        assert "AMOUNT" in text
    every_line = "\n".join(pages)
    assert all(f"Usage line {index}" in every_line for index in range(1, 301))
    assert "$375.00" in pages[-1]  # the totals close the last page
    assert "Amount due" not in pages[0]


def test_the_same_document_gives_the_same_bytes(sample_pdf: bytes) -> None:
    assert render_invoice_pdf(sample_document()) == sample_pdf


def test_the_creation_date_is_the_issue_date(sample_pdf: bytes) -> None:
    reader = pypdf.PdfReader(io.BytesIO(sample_pdf))
    assert reader.metadata is not None
    assert reader.metadata["/CreationDate"].startswith("D:20260201000000")


def test_rendering_opens_no_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("rendering tried to reach the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    document = sample_document(buyer=Party(name="Zoë Müller 株式会社 한국어"), status=InvoiceStatus.DRAFT, number=None)
    assert render_invoice_pdf(document).startswith(b"%PDF-")


def test_the_fonts_and_their_licences_ship_as_package_data() -> None:
    fonts = font_directory()
    shipped = sorted(path.name for path in fonts.iterdir() if not path.name.startswith("."))
    assert shipped == [
        "DejaVuSans-Bold.ttf",
        "DejaVuSans.ttf",
        "DroidSansFallback.ttf",
        "LICENSE-DejaVu.txt",
        "LICENSE-DroidSansFallback.txt",
    ]
    # An installed wheel holds only what package-data names: every shipped file must match a pattern.
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["tally"]
    package = ROOT / "src" / "tally"
    for name in shipped:
        relative = (fonts / name).relative_to(package).as_posix()
        assert any(fnmatch(relative, pattern) for pattern in patterns), relative
    template = "adapters/documents/templates/invoice.html"
    assert any(fnmatch(template, pattern) for pattern in patterns)


def test_the_bytes_do_not_depend_on_the_process(sample_pdf: bytes) -> None:
    # Another interpreter with another string hash seed (set iteration order) renders the same file.
    script = (
        "import hashlib, sys\n"
        "from tests.adapters.documents.support import sample_document\n"
        "from tally.adapters.documents import render_invoice_pdf\n"
        "sys.stdout.write(hashlib.sha256(render_invoice_pdf(sample_document())).hexdigest())\n"
    )
    environment = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True, check=True
    )
    assert result.stdout == hashlib.sha256(sample_pdf).hexdigest()
