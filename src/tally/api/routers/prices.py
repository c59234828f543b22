"""/v1/prices: the catalog's prices (create, get, list, archive) and previews.

A price is immutable once created: to change one, create a new price (under the same code once the
old one is archived, or let `tally catalog apply` do both). Creating and archiving need `admin`;
reading and previewing need `read`.

    POST /v1/prices/preview
    {"price": {"model": "graduated", "currency": "USD",
               "tiers": [{"up_to": 1000, "unit_price": "0"}, {"unit_price": "0.002"}]},
     "quantity": "15000"}

The price is inline, in the document format the catalog stores (see docs/pricing.md), or a stored
one by `price_id`; with `customer` too, the price that customer pays at `at` (their override, if one
applies; default: the customer's clock now). The usage is one of: `quantity`; `events` (each with
its `value`, and its `group` for a matrix price); `summary` (`count` and `sum` of event values);
`groups` (a quantity per group, for a matrix price). Nothing is stored. Amounts come back as exact
decimal strings plus `amount_minor`, the one rounding.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import AwareDatetime, Field

from tally.adapters import ids
from tally.adapters.pagination import PageRequest
from tally.api.auth import Principal, require_scope
from tally.api.context import get_tally
from tally.api.exact_json import exact_json_route
from tally.api.pagination import list_response, page_request
from tally.api.problems import register_status
from tally.api.schemas import ApiModel, ListResponse, Metadata, Resource
from tally.app import catalog_queries
from tally.app.archive_price import archive_price
from tally.app.create_price import PriceInput, create_price
from tally.app.preview_price import (
    PricePreview,
    matrix_dimensions,
    preview_price,
    preview_usage,
    rate_price,
    rating_document,
    stored_price_for_preview,
)
from tally.bootstrap import Tally
from tally.core.rating import Price
from tally.core.rating.usage import GROUPS_MAX
from tally.core.rejections import Rejected

PREVIEW_EVENTS_MAX = 10_000


# Shared with /v1/price_overrides, whose bodies hold price documents too.
ExactJsonRoute = exact_json_route(nonfinite_as_decimal=True)

router = APIRouter(prefix="/prices", tags=["Prices"], route_class=ExactJsonRoute)

register_status("price_code_taken", 409)


class PreviewEvent(ApiModel):
    value: Decimal = Field(description="The event's value (a payment's amount, tokens used…).")
    group: dict[str, str | None] | None = Field(
        default=None, description="Matrix prices: the event's value for each dimension."
    )


class PreviewSummary(ApiModel):
    count: int = Field(ge=0, description="How many events.")
    sum: Decimal = Field(description="The sum of their values.")


class PreviewGroup(ApiModel):
    group: dict[str, str | None] = Field(description="A value for each of the matrix price's dimensions.")
    quantity: Decimal


class PricePreviewRequest(ApiModel):
    price: dict[str, Any] | None = Field(
        default=None, description="An inline price document (see docs/pricing.md); or give `price_id`."
    )
    price_id: str | None = Field(default=None, description="A stored price (`price_…`) instead of `price`.")
    customer: str | None = Field(
        default=None, description="With `price_id`: preview what this customer (`cus_…`) pays (their override)."
    )
    at: AwareDatetime | None = Field(
        default=None, description="With `customer`: the instant whose override applies (default: their clock now)."
    )
    quantity: Decimal | None = Field(default=None, description="The usage as one quantity.")
    events: list[PreviewEvent] | None = Field(
        default=None, max_length=PREVIEW_EVENTS_MAX, description="The usage event by event, in order."
    )
    summary: PreviewSummary | None = Field(default=None, description="The count and sum of event values.")
    groups: list[PreviewGroup] | None = Field(
        default=None, max_length=GROUPS_MAX, description="Matrix prices: a quantity per group."
    )
    apply_minimum: bool = Field(
        default=True, description="false: leave out the per-period minimum (a mid-period preview)."
    )


class BreakdownLineResource(ApiModel):
    kind: str
    quantity: str
    unit_price: str | None
    amount: str = Field(description="Exact and signed: caps are negative.")
    tier: int | None = None
    tier_start: str | None = None
    tier_end: str | None = None
    group: dict[str, str | None] | None = None


class PricePreviewResponse(ApiModel):
    object: Literal["price_preview"] = "price_preview"
    price: dict[str, Any] = Field(description="The price as understood, every default spelled out.")
    model: str
    currency: str
    quantity: str | None = Field(description="The usage measured (for percentages: the sum of event values).")
    quantity_priced: str | None = Field(description="After the quantity transform.")
    event_count: int | None
    amount: str = Field(description="Exact, in major units, before rounding.")
    amount_minor: int = Field(description="Rounded once, in the price's rounding mode, in minor units.")
    breakdown: list[BreakdownLineResource]


@router.post("/preview", response_model=PricePreviewResponse, summary="Rate usage against a price")
def preview(
    body: PricePreviewRequest,
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> PricePreviewResponse:
    if (body.price is None) == (body.price_id is None):
        raise Rejected.because("price_or_price_id_required", "give either an inline `price` or a `price_id`", "price")
    if body.price_id is None:
        if body.customer is not None or body.at is not None:
            raise Rejected.because(
                "customer_needs_a_price_id", "a customer's rate applies to a stored price", "customer"
            )
        return _preview(tally, principal, body, body.price or {}, None)
    price_id = ids.parse_id(ids.PRICE, body.price_id)
    if price_id is None:
        raise Rejected.because("price_not_found", "no such price", "price_id")
    customer_id = None
    if body.customer is not None:
        customer_id = ids.parse_id(ids.CUSTOMER, body.customer)
        if customer_id is None:
            raise Rejected.because("customer_not_found", "no such customer", "customer")
    elif body.at is not None:
        raise Rejected.because("at_needs_a_customer", "`at` picks a customer's override: give `customer`", "at")
    found = stored_price_for_preview(
        tally.engine, tally.clock, principal.tenant_id, price_id, customer_id=customer_id, at=body.at
    )
    return _preview(tally, principal, body, found.price.document(), found.price)


def _preview(
    tally: Tally, principal: Principal, body: PricePreviewRequest, document: dict[str, Any], stored: Price | None
) -> PricePreviewResponse:
    usage = preview_usage(
        matrix_dimensions(document),
        quantity=body.quantity,
        events=[(event.value, event.group) for event in body.events] if body.events is not None else None,
        summary=(body.summary.count, body.summary.sum) if body.summary is not None else None,
        groups=[(item.group, item.quantity) for item in body.groups] if body.groups is not None else None,
    )
    if stored is not None:
        result = rate_price(stored, usage, apply_minimum=body.apply_minimum)
    else:
        result = preview_price(
            tally.engine,
            principal.tenant_id,
            PricePreview(price=document, usage=usage, apply_minimum=body.apply_minimum),
        )
    return PricePreviewResponse.model_validate(rating_document(result))


class CreatePrice(ApiModel):
    code: str = Field(
        min_length=1, max_length=63, description="The price's code, ^[a-z][a-z0-9_]{0,62}$: one active price per code."
    )
    product: str = Field(min_length=1, max_length=63, description="The product's code.")
    price: dict[str, Any] = Field(description="The price document (docs/pricing.md); a usage price names its meter.")
    metadata: Metadata = Field(default_factory=dict)


class PriceResource(Resource):
    object: Literal["price"] = "price"
    code: str
    product: str = Field(description="The product's code.")
    currency: str
    meter: str | None
    model: str
    price: dict[str, Any] = Field(description="The price document, every default spelled out. Never changes.")
    active: bool
    archived_at: datetime | None


def price_resource(row: catalog_queries.PriceRow) -> PriceResource:
    return PriceResource(
        id=ids.format_id(ids.PRICE, row.id),
        created_at=row.created_at,
        metadata=row.metadata,
        code=row.code,
        product=row.product_code,
        currency=row.currency,
        meter=row.meter_code,
        model=str(row.document["model"]),
        price=row.document,
        active=row.archived_at is None,
        archived_at=row.archived_at,
    )


def _price_id(price_id: str) -> Any:
    parsed = ids.parse_id(ids.PRICE, price_id)
    if parsed is None:
        raise Rejected.because("price_not_found", "no such price", "price")
    return parsed


@router.post("", status_code=201, response_model=PriceResource, summary="Create a price (immutable)")
def create(
    body: CreatePrice, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> PriceResource:
    """Rules of the price itself answer the rating core's codes with the field (`price.tiers[1].up_to`);
    an unknown product `product_must_exist`, an unknown meter `meter_must_exist`, a code held by an
    active price 409 `price_code_taken`."""
    row = create_price(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        PriceInput(code=body.code, product=body.product, price=body.price, metadata=body.metadata),
    )
    return price_resource(row)


@router.get("", response_model=ListResponse[PriceResource], summary="List prices, oldest first")
def list_prices(
    request: Request,
    product: str | None = None,
    code: str | None = None,
    include_archived: bool = False,
    page: PageRequest = Depends(page_request(ids.PRICE)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[PriceResource]:
    """Active prices, optionally of one product (by code) or one code; `include_archived=true` for all."""
    found = catalog_queries.list_prices(
        tally.engine, principal.tenant_id, page, product=product, code=code, include_archived=include_archived
    )
    return list_response(found.map(price_resource), request)


@router.get("/{price_id}", response_model=PriceResource, summary="Get a price")
def get_price(
    price_id: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> PriceResource:
    return price_resource(catalog_queries.get_price(tally.engine, principal.tenant_id, _price_id(price_id)))


@router.post("/{price_id}/archive", response_model=PriceResource, summary="Archive a price")
def archive(
    price_id: str, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> PriceResource:
    """No new plan version can use it and its code is free again; versions and subscriptions that
    use it keep it. Archiving an archived price answers it unchanged."""
    return price_resource(archive_price(tally.engine, tally.clock, principal.tenant_id, _price_id(price_id)))
