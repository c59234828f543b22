"""Invoices as documents and exports, and the tenant's invoice profile.

- `GET /v1/invoices/{id}.pdf` and `GET /v1/invoices/{id}.html`: the invoice rendered (`read`), as an
  attachment named after its number; `?locale=de_DE` overrides the customer's and the profile's
  locale. A draft is titled "Draft invoice" and carries a DRAFT watermark in the PDF.
- `GET /v1/invoices/export`: invoices or their lines as CSV, JSON or JSON Lines, streamed (`read`).
- `GET` / `PUT /v1/account/invoice_profile`: the seller block of every document (`read` / `admin`).

This router is listed before `invoices` so `/invoices/export` and `/invoices/{id}.pdf` are matched
here, not as an invoice id.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import Field

from tally.adapters import ids
from tally.api.auth import Principal, require_scope
from tally.api.context import get_tally
from tally.api.schemas import ApiModel
from tally.app.export_invoices import ExportFormat, ExportQuery, ExportRecords, export_invoices
from tally.app.invoice_documents import render_invoice
from tally.app.invoice_profile import (
    ADDRESS_LINES_MAX,
    NOTES_MAX,
    InvoiceProfile,
    get_invoice_profile,
    set_invoice_profile,
)
from tally.bootstrap import Tally
from tally.core.customers import TaxId
from tally.core.rejections import Rejected

router = APIRouter(tags=["Invoices"])

_MEDIA_TYPES = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.JSON: "application/json",
    ExportFormat.JSONL: "application/x-ndjson",
}
LocaleQuery = Annotated[
    str | None,
    Query(max_length=32, description="A CLDR locale (`de_DE`); default: the customer's, then the profile's."),
]


def _invoice_id(text: str) -> uuid.UUID:
    parsed = ids.parse_id(ids.INVOICE, text)
    if parsed is None:
        raise Rejected.because("invoice_not_found", "no such invoice", "id")
    return parsed


def _document(tally: Tally, tenant_id: uuid.UUID, text: str, kind: str, locale: str | None) -> Response:
    rendered = render_invoice(tally.engine, tenant_id, _invoice_id(text), kind, locale=locale)
    return Response(
        content=rendered.content,
        media_type=rendered.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{rendered.filename}"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get(
    "/invoices/export",
    summary="Export invoices or invoice lines (CSV, JSON, JSON Lines)",
    response_class=StreamingResponse,
    responses={200: {"content": {media: {} for media in _MEDIA_TYPES.values()}}},
)
def export(
    format: Annotated[ExportFormat, Query(description="csv, json (one array) or jsonl.")] = ExportFormat.CSV,
    records: Annotated[ExportRecords, Query(description="invoices, or their lines.")] = ExportRecords.INVOICES,
    status: Annotated[str | None, Query(description="Only invoices in this status.")] = None,
    issued_from: Annotated[
        datetime | None, Query(alias="from", description="Issued at or after (drafts have no issue time).")
    ] = None,
    issued_to: Annotated[datetime | None, Query(alias="to", description="Issued before.")] = None,
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> StreamingResponse:
    """Streamed with bounded memory; columns are stable and amounts exact decimals (docs/invoices.md)."""
    query = ExportQuery(records=records, format=format, status=status, issued_from=issued_from, issued_to=issued_to)
    chunks = export_invoices(tally.engine, principal.tenant_id, query)
    filename = f"{records.value}.{format.value}"
    return StreamingResponse(
        (chunk.encode() for chunk in chunks),
        media_type=_MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "private, no-store"},
    )


@router.get(
    "/invoices/{id}.pdf",
    summary="The invoice as a PDF",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def invoice_pdf(
    id: str, locale: LocaleQuery = None, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> Response:
    return _document(tally, principal.tenant_id, id, "pdf", locale)


@router.get(
    "/invoices/{id}.html",
    summary="The invoice as a self-contained HTML page",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}}},
)
def invoice_html(
    id: str, locale: LocaleQuery = None, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> Response:
    return _document(tally, principal.tenant_id, id, "html", locale)


# ----- the invoice profile ---------------------------------------------------------------------------


class TaxIdBody(ApiModel):
    type: str = Field(max_length=16, description="Country or region and scheme, as Stripe spells them: `eu_vat`.")
    value: str = Field(max_length=64)


class InvoiceProfileBody(ApiModel):
    seller_name: str = Field(max_length=200, description="The seller's legal name, at the top of every document.")
    email: str | None = Field(default=None, max_length=254)
    address_lines: list[str] = Field(default_factory=list, max_length=ADDRESS_LINES_MAX)
    tax_ids: list[TaxIdBody] = Field(default_factory=list, max_length=10)
    locale: str = Field(default="en_US", max_length=32, description="Documents' default CLDR locale.")
    notes: list[str] = Field(
        default_factory=list, max_length=NOTES_MAX, description="Printed under the totals: payment instructions."
    )
    footer: str | None = Field(default=None, max_length=500, description="A legal line at the bottom.")


class InvoiceProfileResource(ApiModel):
    object: Literal["invoice_profile"] = "invoice_profile"
    configured: bool = Field(description="False until a profile is set: the tenant's name stands in as seller.")
    seller_name: str
    email: str | None
    address_lines: list[str]
    tax_ids: list[TaxIdBody]
    locale: str
    notes: list[str]
    footer: str | None


def _resource(profile: InvoiceProfile) -> InvoiceProfileResource:
    return InvoiceProfileResource(
        configured=profile.configured,
        seller_name=profile.seller_name,
        email=profile.email,
        address_lines=list(profile.address_lines),
        tax_ids=[TaxIdBody(type=tax_id.type, value=tax_id.value) for tax_id in profile.tax_ids],
        locale=profile.locale,
        notes=list(profile.notes),
        footer=profile.footer,
    )


@router.get(
    "/account/invoice_profile",
    response_model=InvoiceProfileResource,
    tags=["Account"],
    summary="The seller details on invoice documents",
)
def get_profile(
    principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> InvoiceProfileResource:
    return _resource(get_invoice_profile(tally.engine, principal.tenant_id))


@router.put(
    "/account/invoice_profile",
    response_model=InvoiceProfileResource,
    tags=["Account"],
    summary="Replace the seller details on invoice documents",
)
def put_profile(
    body: InvoiceProfileBody, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> InvoiceProfileResource:
    """Replaces the whole profile; documents rendered from then on show it (invoices themselves never change)."""
    profile = InvoiceProfile(
        seller_name=body.seller_name,
        email=body.email,
        address_lines=tuple(body.address_lines),
        tax_ids=tuple(TaxId(item.type, item.value) for item in body.tax_ids),
        locale=body.locale,
        notes=tuple(body.notes),
        footer=body.footer,
    )
    return _resource(set_invoice_profile(tally.engine, tally.clock, principal.tenant_id, profile))
