"""/v1/prices: try a price before launching it (scope `read`).

    POST /v1/prices/preview
    {"price": {"model": "graduated", "currency": "USD",
               "tiers": [{"up_to": 1000, "unit_price": "0"}, {"unit_price": "0.002"}]},
     "quantity": "15000"}

The price is inline, in the document format the catalog stores (see docs/pricing.md). The usage is
one of: `quantity`; `events` (each with its `value`, and its `group` for a matrix price); `summary`
(`count` and `sum` of event values); `groups` (a quantity per group, for a matrix price). Nothing is
stored. Amounts come back as exact decimal strings plus `amount_minor`, the one rounding.

Preview by price id comes with stored prices: `POST /v1/prices/{id}/preview` with the same usage.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from pydantic import Field

from tally.api.auth import Principal, require_scope
from tally.api.context import get_tally
from tally.api.schemas import ApiModel
from tally.app.preview_price import PricePreview, matrix_dimensions, preview_price, preview_usage, rating_document
from tally.bootstrap import Tally
from tally.core.rating.usage import GROUPS_MAX

PREVIEW_EVENTS_MAX = 10_000


class _ExactJsonRequest(Request):
    """JSON numbers stay exact (decimals as `Decimal`), and NaN/Infinity arrive as decimals too, so
    the price's own rules refuse them (`price_must_be_finite`) instead of a float slipping in."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_float=Decimal, parse_constant=Decimal)
        return self._json


class _ExactJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(_ExactJsonRequest(request.scope, request.receive))

        return exact


router = APIRouter(prefix="/prices", tags=["Prices"], route_class=_ExactJsonRoute)


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
    price: dict[str, Any] = Field(description="An inline price document (see docs/pricing.md).")
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


@router.post("/preview", response_model=PricePreviewResponse, summary="Rate usage against an inline price")
def preview(
    body: PricePreviewRequest,
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> PricePreviewResponse:
    usage = preview_usage(
        matrix_dimensions(body.price),
        quantity=body.quantity,
        events=[(event.value, event.group) for event in body.events] if body.events is not None else None,
        summary=(body.summary.count, body.summary.sum) if body.summary is not None else None,
        groups=[(item.group, item.quantity) for item in body.groups] if body.groups is not None else None,
    )
    result = preview_price(
        tally.engine,
        principal.tenant_id,
        PricePreview(price=body.price, usage=usage, apply_minimum=body.apply_minimum),
    )
    return PricePreviewResponse.model_validate(rating_document(result))
