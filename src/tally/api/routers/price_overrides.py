"""/v1/price_overrides: a negotiated rate for one customer on one catalog price, over a window
[effective_from, effective_until), without copying any plan.

The override is a price document (docs/pricing.md) with the price's meter, interval and billing
timing (taken from the price when left out; changing them is refused), in the price's and the
customer's currency (`price_currency_must_match_customer`). Windows of one customer and price never
overlap (409 `price_override_overlaps`). An override is never edited: `end` it (its end only ever
moves earlier) and create another. Rating reads prices through the customer's effective price, and
`POST /v1/prices/preview` with `price_id` and `customer` shows it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import AwareDatetime, Field

from tally.adapters import ids
from tally.adapters.pagination import PageRequest
from tally.api.auth import Principal, require_scope
from tally.api.context import get_tally
from tally.api.pagination import list_response, page_request
from tally.api.problems import register_status
from tally.api.routers.prices import ExactJsonRoute
from tally.api.schemas import ApiModel, ListResponse, Metadata, Resource
from tally.app import catalog_queries
from tally.app.create_price_override import OverrideInput, create_price_override
from tally.app.end_price_override import end_price_override
from tally.bootstrap import Tally
from tally.core.rejections import Rejected

router = APIRouter(prefix="/price_overrides", tags=["Catalog"], route_class=ExactJsonRoute)

for _code in ("price_override_overlaps", "price_override_already_ended"):
    register_status(_code, 409)


class CreateOverride(ApiModel):
    customer: str = Field(max_length=64, description="The customer (`cus_…`).")
    price: str = Field(max_length=64, description="The catalog price overridden (`price_…`).")
    override: dict[str, Any] = Field(description="The negotiated price document.")
    effective_from: AwareDatetime | None = Field(default=None, description="Default: the customer's clock now.")
    effective_until: AwareDatetime | None = Field(default=None, description="Exclusive; default: until ended.")
    metadata: Metadata = Field(default_factory=dict)


class EndOverride(ApiModel):
    at: AwareDatetime | None = Field(default=None, description="Default: the customer's clock now.")


class OverrideResource(Resource):
    object: Literal["price_override"] = "price_override"
    customer: str
    price: str
    currency: str
    override: dict[str, Any] = Field(description="The negotiated price document, every default spelled out.")
    effective_from: datetime
    effective_until: datetime | None
    updated_at: datetime


def _override(row: catalog_queries.OverrideRow) -> OverrideResource:
    return OverrideResource(
        id=ids.format_id(ids.PRICE_OVERRIDE, row.id),
        created_at=row.created_at,
        metadata=row.metadata,
        customer=ids.format_id(ids.CUSTOMER, row.customer_id),
        price=ids.format_id(ids.PRICE, row.price_id),
        currency=row.currency,
        override=row.document,
        effective_from=row.effective_from,
        effective_until=row.effective_until,
        updated_at=row.updated_at,
    )


def _parse(prefix: str, text: str, code: str, field: str) -> uuid.UUID:
    parsed = ids.parse_id(prefix, text)
    if parsed is None:
        raise Rejected.because(code, f"no such {field}", field)
    return parsed


@router.post("", status_code=201, response_model=OverrideResource, summary="Give a customer a negotiated rate")
def create(
    body: CreateOverride, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> OverrideResource:
    row = create_price_override(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        OverrideInput(
            customer_id=_parse(ids.CUSTOMER, body.customer, "customer_not_found", "customer"),
            price_id=_parse(ids.PRICE, body.price, "price_must_exist", "price"),
            price=body.override,
            effective_from=body.effective_from,
            effective_until=body.effective_until,
            metadata=body.metadata,
        ),
    )
    return _override(row)


@router.get("", response_model=ListResponse[OverrideResource], summary="List price overrides, oldest first")
def list_overrides(
    request: Request,
    customer: str | None = None,
    price: str | None = None,
    page: PageRequest = Depends(page_request(ids.PRICE_OVERRIDE)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[OverrideResource]:
    """Optionally of one customer (`cus_…`) and/or one price (`price_…`)."""
    found = catalog_queries.list_overrides(
        tally.engine,
        principal.tenant_id,
        page,
        customer_id=_parse(ids.CUSTOMER, customer, "customer_not_found", "customer") if customer else None,
        price_id=_parse(ids.PRICE, price, "price_not_found", "price") if price else None,
    )
    return list_response(found.map(_override), request)


@router.get("/{override_id}", response_model=OverrideResource, summary="Get a price override")
def get_override(
    override_id: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> OverrideResource:
    parsed = _parse(ids.PRICE_OVERRIDE, override_id, "price_override_not_found", "override")
    return _override(catalog_queries.get_override(tally.engine, principal.tenant_id, parsed))


@router.post("/{override_id}/end", response_model=OverrideResource, summary="End a price override")
def end(
    override_id: str,
    body: EndOverride | None = None,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> OverrideResource:
    parsed = _parse(ids.PRICE_OVERRIDE, override_id, "price_override_not_found", "override")
    at = body.at if body is not None else None
    return _override(end_price_override(tally.engine, tally.clock, principal.tenant_id, parsed, at))
