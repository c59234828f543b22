"""/v1/customers/{id}/charges and /v1/charges: one-off charges (invoice items).

A charge is a quantity of a one-off catalog price (by `price_…` id or its code), pending until the
billing run puts it on the customer's next invoice, or billed at once on an invoice of its own
(`invoice_now`, finalized immediately). A pending charge can be cancelled; an invoiced one cannot
(409 `charge_is_invoiced`: issue a credit note on its invoice). Reading needs `read`; creating and
cancelling `admin`. Creating is idempotent on `idempotency_key` (the body's, else the
Idempotency-Key header): a replay answers 200 with the charge first recorded, a replay with other
content 409 `exists_with_different_<field>`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import Field

from tally.adapters import ids
from tally.adapters.pagination import PageRequest
from tally.adapters.postgres import one_off_charges as store
from tally.api.auth import Principal, require_scope
from tally.api.context import get_tally
from tally.api.exact_json import exact_json_route
from tally.api.pagination import list_response, page_request
from tally.api.problems import register_status
from tally.api.schemas import ApiModel, ListResponse, Resource
from tally.app import charge_queries
from tally.app.cancel_charge import cancel_charge
from tally.app.create_charge import ChargeInput, create_charge
from tally.app.finalize_invoice import DUE_DAYS_DEFAULT, DUE_DAYS_MAX
from tally.bootstrap import Tally
from tally.core.invoicing.context import ONE_OFF_DESCRIPTION_LENGTH_MAX
from tally.core.rejections import Rejected

# Bodies parsed exactly: a quantity may carry up to 12 decimal places, which a float would round
# silently (NaN and Infinity arrive as Decimals, for the core to refuse with its code).
router = APIRouter(tags=["Charges"], route_class=exact_json_route(nonfinite_as_decimal=True))

for _code in (
    "charge_is_cancelled",
    "charge_is_invoiced",
    "exists_with_different_customer",
    "exists_with_different_price",
    "exists_with_different_quantity",
    "exists_with_different_description",
    "exists_with_different_charged_at",
    "exists_with_different_invoice_now",
):
    register_status(_code, 409)

ChargeStatus = Literal["pending", "invoiced", "cancelled"]
IdempotencyHeader = Annotated[str | None, Header(alias="Idempotency-Key", include_in_schema=False)]


def _parse(prefix: str, text: str, code: str, field: str) -> uuid.UUID:
    parsed = ids.parse_id(prefix, text)
    if parsed is None:
        raise Rejected.because(code, f"no such {field}", field)
    return parsed


class ChargeBody(ApiModel):
    price: str = Field(max_length=255, description="A one-off price: its id (`price_…`) or its code.")
    quantity: Decimal = Field(default=Decimal(1), description="Above 0, at most 10^12, 12 decimal places at most.")
    description: str = Field(default="", max_length=ONE_OFF_DESCRIPTION_LENGTH_MAX, description="Shown on the line.")
    charged_at: datetime | None = Field(
        default=None, description="Default: the customer's now (a test clock's time). Never later; a year back at most."
    )
    invoice_now: bool = Field(
        default=False,
        description="Bill it at once, alone, on an invoice finalized immediately (default: next invoice).",
    )
    due_in_days: int = Field(default=DUE_DAYS_DEFAULT, ge=0, le=DUE_DAYS_MAX, description="With invoice_now.")
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)


class ChargeResource(Resource):
    object: Literal["charge"] = "charge"
    customer: str
    price: str
    price_code: str
    currency: str
    quantity: str
    description: str
    charged_at: datetime
    status: ChargeStatus
    invoice_now: bool
    invoice: str | None = Field(
        description="The finalized invoice carrying the charge (null until invoiced; with invoice_now, at once)."
    )
    cancelled_at: datetime | None
    idempotency_key: str | None


def charge_resource(row: store.ChargeRow) -> ChargeResource:
    return ChargeResource(
        id=ids.format_id(ids.ONE_OFF_CHARGE, row.id),
        created_at=row.recorded_at,
        customer=ids.format_id(ids.CUSTOMER, row.customer_id),
        price=ids.format_id(ids.PRICE, row.price_id),
        price_code=row.price_code,
        currency=row.currency,
        quantity=str(row.quantity),
        description=row.description,
        charged_at=row.charged_at,
        status=row.status,  # type: ignore[arg-type]  # one of the three, by the adapter's CASE
        invoice_now=row.invoice_now,
        invoice=None if row.invoice_id is None else ids.format_id(ids.INVOICE, row.invoice_id),
        cancelled_at=row.cancelled_at,
        idempotency_key=row.idempotency_key,
    )


@router.post(
    "/customers/{id}/charges",
    status_code=201,
    response_model=ChargeResource,
    tags=["Customers"],
    summary="Charge a customer once",
)
def create(
    id: str,
    body: ChargeBody,
    response: Response,
    idempotency_key: IdempotencyHeader = None,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> ChargeResource:
    """Pending until the customer's next invoice, or billed at once with `invoice_now`."""
    price_id = ids.parse_id(ids.PRICE, body.price) if body.price.startswith(f"{ids.PRICE}_") else None
    created = create_charge(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        ChargeInput(
            customer_id=_parse(ids.CUSTOMER, id, "customer_not_found", "id"),
            price_id=price_id,
            price_code=None if price_id is not None else body.price,
            quantity=body.quantity,
            description=body.description,
            charged_at=body.charged_at,
            invoice_now=body.invoice_now,
            due_in_days=body.due_in_days,
            idempotency_key=body.idempotency_key or idempotency_key,
        ),
    )
    if created.replayed:
        response.status_code = 200
    return charge_resource(created.charge)


@router.get(
    "/customers/{id}/charges",
    response_model=ListResponse[ChargeResource],
    tags=["Customers"],
    summary="List a customer's charges, newest first",
)
def list_customer_charges(
    id: str,
    request: Request,
    status: Annotated[ChargeStatus | None, Query(description="Only charges in this status.")] = None,
    page: PageRequest = Depends(page_request(ids.ONE_OFF_CHARGE)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[ChargeResource]:
    found = charge_queries.list_charges(
        tally.engine, principal.tenant_id, _parse(ids.CUSTOMER, id, "customer_not_found", "id"), page, status=status
    )
    return list_response(found.map(charge_resource), request)


@router.get("/charges/{id}", response_model=ChargeResource, summary="Get a charge")
def get_charge(
    id: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> ChargeResource:
    charge_id = _parse(ids.ONE_OFF_CHARGE, id, "charge_not_found", "id")
    return charge_resource(charge_queries.get_charge(tally.engine, principal.tenant_id, charge_id))


@router.post("/charges/{id}/cancel", response_model=ChargeResource, summary="Cancel a pending charge")
def cancel(id: str, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)) -> ChargeResource:
    """Only a pending charge (409 `charge_is_cancelled`, `charge_is_invoiced`); a draft carrying it is made again."""
    charge_id = _parse(ids.ONE_OFF_CHARGE, id, "charge_not_found", "id")
    return charge_resource(cancel_charge(tally.engine, tally.clock, principal.tenant_id, charge_id))
