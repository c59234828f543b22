"""/v1/coupons, /v1/coupon_redemptions, /v1/credit_grants, /v1/commitments, /v1/price_caps,
/v1/tax_rates: the terms the billing run applies besides subscriptions and usage.

Each is a frozen fact: created, read, and ended (a coupon archived, a grant expired early, a tax
rate retired), never edited. Creating a credit grant and expiring one post to the ledger in the
same transaction. Reading needs `read`; writing `admin`; every POST takes an `Idempotency-Key`.
Customers, subscriptions and prices are named by their prefixed ids; another tenant's answer 404.
(The module is named `terms`: the invoicing terms a customer is billed under.)
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field

from tally.adapters import ids
from tally.adapters.pagination import PageRequest
from tally.adapters.postgres import invoicing_terms as store
from tally.api.auth import Principal, require_scope
from tally.api.context import get_tally
from tally.api.exact_json import exact_json_route
from tally.api.pagination import list_response, page_request
from tally.api.problems import register_status
from tally.api.schemas import ApiModel, ListResponse, Resource
from tally.app.archive_coupon import archive_coupon
from tally.app.create_commitment import CommitmentInput, create_commitment
from tally.app.create_coupon import CouponInput, create_coupon
from tally.app.create_price_cap import PriceCapInput, create_price_cap
from tally.app.create_tax_rate import TaxRateInput, create_tax_rate
from tally.app.end_credit_grant import end_credit_grant
from tally.app.grant_credits import GrantInput, grant_credits
from tally.app.invoicing_term_queries import get_term, list_terms
from tally.app.redeem_coupon import RedemptionInput, redeem_coupon
from tally.app.retire_tax_rate import retire_tax_rate
from tally.bootstrap import Tally
from tally.core.rejections import Rejected

# Percentages, values per unit and maximum amounts arrive as `Decimal` even when sent as JSON numbers
# (a float would round a long one silently); NaN and Infinity arrive as Decimals too, to be refused.
router = APIRouter(route_class=exact_json_route(nonfinite_as_decimal=True))

# Ending what has ended, or a code taken, conflicts with the state; bad values stay 422.
for _code in ("coupon_is_archived", "coupon_code_taken", "credit_grant_is_expired", "tax_rate_is_retired"):
    register_status(_code, 409)


def _parse(prefix: str, text: str, code: str, field: str) -> uuid.UUID:
    parsed = ids.parse_id(prefix, text)
    if parsed is None:
        raise Rejected.because(code, f"no such {field}", field)
    return parsed


def _customer(text: str) -> uuid.UUID:
    return _parse(ids.CUSTOMER, text, "customer_not_found", "customer")


def _subscription(text: str | None) -> uuid.UUID | None:
    return None if text is None else _parse(ids.SUBSCRIPTION, text, "subscription_not_found", "subscription")


def _price(text: str) -> uuid.UUID:
    return _parse(ids.PRICE, text, "price_not_found", "price")


def _wire(prefix: str, value: uuid.UUID | None) -> str | None:
    return None if value is None else ids.format_id(prefix, value)


def _price_wire(value: str) -> str:
    return ids.format_id(ids.PRICE, uuid.UUID(value))


CustomerFilter = Annotated[str | None, Query(description="Only this customer's (`cus_…`).")]


# ----- coupons ---------------------------------------------------------------------------------------


class CouponBody(ApiModel):
    code: str = Field(description="Unique in the tenant; a-z, 0-9, _ and -. Names the coupon on discount lines.")
    percent_off: Decimal | None = Field(default=None, description="Above 0, at most 100. Or amount_off_minor.")
    amount_off_minor: int | None = Field(default=None, description="Per coupon period, in `currency`.")
    currency: str | None = Field(default=None, max_length=16, description="Required with amount_off_minor.")
    duration: Literal["once", "repeating", "forever"]
    duration_periods: int | None = Field(
        default=None,
        description="Repeating only: how many of the subscription's billing periods, the first being the one that "
        "holds the redemption (see docs/invoicing.md, Coupons).",
    )
    plans: list[str] = Field(default_factory=list, max_length=100, description="Only these plans (codes).")
    prices: list[str] = Field(default_factory=list, max_length=100, description="Only these prices (`price_…`).")


class CouponResource(Resource):
    object: Literal["coupon"] = "coupon"
    code: str
    percent_off: str | None
    amount_off_minor: int | None
    currency: str | None
    duration: str
    duration_periods: int | None
    plans: list[str]
    prices: list[str]
    archived_at: datetime | None


def _coupon(row: store.CouponRow) -> CouponResource:
    return CouponResource(
        id=ids.format_id(ids.COUPON, row.id),
        created_at=row.created_at,
        code=row.code,
        percent_off=None if row.percent_off is None else str(row.percent_off),
        amount_off_minor=row.amount_off_minor,
        currency=row.currency,
        duration=row.duration,
        duration_periods=row.duration_periods,
        plans=row.plan_ids,
        prices=[_price_wire(price) for price in row.price_ids],
        archived_at=row.archived_at,
    )


@router.post("/coupons", status_code=201, response_model=CouponResource, tags=["Coupons"], summary="Create a coupon")
def create_coupon_route(
    body: CouponBody, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> CouponResource:
    row = create_coupon(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        CouponInput(
            code=body.code,
            duration=body.duration,
            duration_periods=body.duration_periods,
            percent_off=body.percent_off,
            amount_off_minor=body.amount_off_minor,
            currency=body.currency,
            plan_codes=tuple(body.plans),
            price_ids=tuple(_price(price) for price in body.prices),
        ),
    )
    return _coupon(row)


@router.get("/coupons", response_model=ListResponse[CouponResource], tags=["Coupons"], summary="List coupons")
def list_coupons(
    request: Request,
    page: PageRequest = Depends(page_request(ids.COUPON)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[CouponResource]:
    return list_response(list_terms(tally.engine, principal.tenant_id, "coupon", page).map(_coupon), request)


@router.get("/coupons/{id}", response_model=CouponResource, tags=["Coupons"], summary="Get a coupon")
def get_coupon(
    id: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> CouponResource:
    coupon_id = _parse(ids.COUPON, id, "coupon_not_found", "id")
    return _coupon(get_term(tally.engine, principal.tenant_id, "coupon", coupon_id, store.CouponRow))


@router.post("/coupons/{id}/archive", response_model=CouponResource, tags=["Coupons"], summary="Archive a coupon")
def archive_coupon_route(
    id: str, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> CouponResource:
    """No redemption from now on; discounts of existing redemptions continue (`coupon_is_archived` twice)."""
    coupon_id = _parse(ids.COUPON, id, "coupon_not_found", "id")
    return _coupon(archive_coupon(tally.engine, tally.clock, principal.tenant_id, coupon_id))


# ----- redemptions -----------------------------------------------------------------------------------


class RedemptionBody(ApiModel):
    coupon: str = Field(description="`coupon_…`")
    customer: str = Field(description="`cus_…`")
    subscription: str | None = Field(default=None, description="Only this subscription of the customer (`sub_…`).")
    redeemed_at: datetime | None = Field(default=None, description="Default: the customer's now (its test clock).")


class RedemptionResource(Resource):
    object: Literal["coupon_redemption"] = "coupon_redemption"
    coupon: str
    customer: str
    subscription: str | None
    redeemed_at: datetime


def _redemption(row: store.RedemptionRow) -> RedemptionResource:
    return RedemptionResource(
        id=ids.format_id(ids.COUPON_REDEMPTION, row.id),
        created_at=row.recorded_at,
        coupon=ids.format_id(ids.COUPON, row.coupon_id),
        customer=ids.format_id(ids.CUSTOMER, row.customer_id),
        subscription=_wire(ids.SUBSCRIPTION, row.subscription_id),
        redeemed_at=row.redeemed_at,
    )


@router.post(
    "/coupon_redemptions",
    status_code=201,
    response_model=RedemptionResource,
    tags=["Coupons"],
    summary="Redeem a coupon for a customer",
)
def redeem(
    body: RedemptionBody, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> RedemptionResource:
    """An amount-off coupon in another currency than the customer's: `coupon_currency_must_match_invoice`."""
    row = redeem_coupon(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        RedemptionInput(
            coupon_id=_parse(ids.COUPON, body.coupon, "coupon_not_found", "coupon"),
            customer_id=_customer(body.customer),
            subscription_id=_subscription(body.subscription),
            redeemed_at=body.redeemed_at,
        ),
    )
    return _redemption(row)


@router.get(
    "/coupon_redemptions", response_model=ListResponse[RedemptionResource], tags=["Coupons"], summary="List redemptions"
)
def list_redemptions(
    request: Request,
    customer: CustomerFilter = None,
    page: PageRequest = Depends(page_request(ids.COUPON_REDEMPTION)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[RedemptionResource]:
    found = list_terms(
        tally.engine,
        principal.tenant_id,
        "coupon_redemption",
        page,
        customer_id=None if customer is None else _customer(customer),
    )
    return list_response(found.map(_redemption), request)


@router.get("/coupon_redemptions/{id}", response_model=RedemptionResource, tags=["Coupons"], summary="Get a redemption")
def get_redemption(
    id: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> RedemptionResource:
    redemption_id = _parse(ids.COUPON_REDEMPTION, id, "coupon_redemption_not_found", "id")
    return _redemption(
        get_term(tally.engine, principal.tenant_id, "coupon_redemption", redemption_id, store.RedemptionRow)
    )


# ----- credit grants ---------------------------------------------------------------------------------


class ScopeBody(ApiModel):
    kind: Literal["all", "usage", "prices", "meters"] = "all"
    ids: list[str] = Field(default_factory=list, max_length=100, description="`price_…` ids, or meter codes.")


class GrantBody(ApiModel):
    customer: str = Field(description="`cus_…`")
    kind: Literal["prepaid", "promotional"]
    amount_minor: int = Field(description="In the grant's unit.")
    unit: str | None = Field(
        default=None, max_length=16, description="A currency or custom unit; default: the customer's currency."
    )
    value_per_unit: Decimal | None = Field(
        default=None, description="A custom unit: one credit's value in value_currency."
    )
    value_currency: str | None = Field(default=None, max_length=16)
    price_minor: int | None = Field(default=None, description="A prepaid grant in a custom unit: what was paid.")
    effective_at: datetime | None = Field(default=None, description="Default: the customer's now.")
    expires_at: datetime | None = Field(default=None, description="After effective_at; default: never.")
    priority: int = Field(default=0, description="0 to 1000; lower burns first.")
    scope: ScopeBody = Field(default_factory=ScopeBody)


class GrantResource(Resource):
    object: Literal["credit_grant"] = "credit_grant"
    customer: str
    kind: str
    unit: str
    amount_minor: int
    remaining_minor: int = Field(description="The balance of the grant's ledger account.")
    value_per_unit: str | None
    value_currency: str | None
    effective_at: datetime
    expires_at: datetime | None
    expired_early_at: datetime | None
    priority: int
    scope: dict[str, Any]
    ledger_account: str = Field(description="The grant's customer-credit account code.")
    ledger_transaction: str | None = Field(description="The `credits_granted` posting.")


def _grant(row: store.GrantRow) -> GrantResource:
    scope = dict(row.scope)
    if scope.get("kind") == "prices":
        scope["ids"] = [_price_wire(price) for price in scope.get("ids", [])]
    return GrantResource(
        id=ids.format_id(ids.CREDIT_GRANT, row.id),
        created_at=row.recorded_at,
        customer=ids.format_id(ids.CUSTOMER, row.customer_id),
        kind=row.kind,
        unit=row.unit,
        amount_minor=row.amount_minor,
        remaining_minor=row.remaining_minor,
        value_per_unit=None if row.value_per_unit is None else str(row.value_per_unit),
        value_currency=row.value_currency,
        effective_at=row.effective_at,
        expires_at=row.expires_at,
        expired_early_at=row.ended_at,
        priority=row.priority,
        scope=scope,
        ledger_account=store.grant_account_code(row.id),
        ledger_transaction=_wire(ids.TRANSACTION, row.ledger_transaction_id),
    )


@router.post(
    "/credit_grants", status_code=201, response_model=GrantResource, tags=["Credit grants"], summary="Grant credits"
)
def create_grant(
    body: GrantBody, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> GrantResource:
    """Posts `credits_granted` with the grant: prepaid against cash, promotional against promotions."""
    scope_ids = [str(_price(text)) for text in body.scope.ids] if body.scope.kind == "prices" else body.scope.ids
    row = grant_credits(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        GrantInput(
            customer_id=_customer(body.customer),
            kind=body.kind,
            amount_minor=body.amount_minor,
            unit=body.unit,
            effective_at=body.effective_at,
            expires_at=body.expires_at,
            priority=body.priority,
            scope_kind=body.scope.kind,
            scope_ids=tuple(scope_ids),
            value_per_unit=body.value_per_unit,
            value_currency=body.value_currency,
            price_minor=body.price_minor,
        ),
    )
    return _grant(row)


@router.get(
    "/credit_grants", response_model=ListResponse[GrantResource], tags=["Credit grants"], summary="List credit grants"
)
def list_grants(
    request: Request,
    customer: CustomerFilter = None,
    page: PageRequest = Depends(page_request(ids.CREDIT_GRANT)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[GrantResource]:
    found = list_terms(
        tally.engine,
        principal.tenant_id,
        "credit_grant",
        page,
        customer_id=None if customer is None else _customer(customer),
    )
    return list_response(found.map(_grant), request)


@router.get("/credit_grants/{id}", response_model=GrantResource, tags=["Credit grants"], summary="Get a credit grant")
def get_grant(
    id: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> GrantResource:
    grant_id = _parse(ids.CREDIT_GRANT, id, "credit_grant_not_found", "id")
    return _grant(get_term(tally.engine, principal.tenant_id, "credit_grant", grant_id, store.GrantRow))


@router.post(
    "/credit_grants/{id}/expire", response_model=GrantResource, tags=["Credit grants"], summary="Expire a grant now"
)
def expire_grant(
    id: str, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> GrantResource:
    """Posts what is left as `credits_expired` (`credit_grant_is_expired` when it has expired already)."""
    grant_id = _parse(ids.CREDIT_GRANT, id, "credit_grant_not_found", "id")
    return _grant(end_credit_grant(tally.engine, tally.clock, principal.tenant_id, grant_id))


# ----- commitments and caps --------------------------------------------------------------------------


class CommitmentBody(ApiModel):
    customer: str = Field(description="`cus_…`")
    subscription: str | None = Field(default=None, description="Only this subscription's spend (`sub_…`).")
    minimum_minor: int = Field(description="The minimum spend over the period, in the customer's currency.")
    period_start: datetime
    period_end: datetime
    prices: list[str] = Field(default_factory=list, max_length=100, description="Only these prices count (`price_…`).")


class CommitmentResource(Resource):
    object: Literal["commitment"] = "commitment"
    customer: str
    subscription: str | None
    currency: str
    minimum_minor: int
    period_start: datetime
    period_end: datetime
    prices: list[str]


def _commitment(row: store.CommitmentRow) -> CommitmentResource:
    return CommitmentResource(
        id=ids.format_id(ids.COMMITMENT, row.id),
        created_at=row.recorded_at,
        customer=ids.format_id(ids.CUSTOMER, row.customer_id),
        subscription=_wire(ids.SUBSCRIPTION, row.subscription_id),
        currency=row.currency,
        minimum_minor=row.minimum_minor,
        period_start=row.period_start,
        period_end=row.period_end,
        prices=[_price_wire(price) for price in row.price_ids],
    )


@router.post(
    "/commitments",
    status_code=201,
    response_model=CommitmentResource,
    tags=["Commitments"],
    summary="Record a minimum commitment",
)
def create_commitment_route(
    body: CommitmentBody, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> CommitmentResource:
    row = create_commitment(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        CommitmentInput(
            customer_id=_customer(body.customer),
            subscription_id=_subscription(body.subscription),
            minimum_minor=body.minimum_minor,
            period_start=body.period_start,
            period_end=body.period_end,
            price_ids=tuple(_price(price) for price in body.prices),
        ),
    )
    return _commitment(row)


@router.get(
    "/commitments", response_model=ListResponse[CommitmentResource], tags=["Commitments"], summary="List commitments"
)
def list_commitments(
    request: Request,
    customer: CustomerFilter = None,
    page: PageRequest = Depends(page_request(ids.COMMITMENT)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[CommitmentResource]:
    found = list_terms(
        tally.engine,
        principal.tenant_id,
        "commitment",
        page,
        customer_id=None if customer is None else _customer(customer),
    )
    return list_response(found.map(_commitment), request)


@router.get("/commitments/{id}", response_model=CommitmentResource, tags=["Commitments"], summary="Get a commitment")
def get_commitment(
    id: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> CommitmentResource:
    commitment_id = _parse(ids.COMMITMENT, id, "commitment_not_found", "id")
    return _commitment(get_term(tally.engine, principal.tenant_id, "commitment", commitment_id, store.CommitmentRow))


class PriceCapBody(ApiModel):
    customer: str = Field(description="`cus_…`")
    subscription: str | None = Field(default=None, description="Only this subscription (`sub_…`).")
    price: str = Field(description="A usage price (`price_…`).")
    maximum_amount: Decimal = Field(description="Per billing period, in major units of the price's currency.")


class PriceCapResource(Resource):
    object: Literal["price_cap"] = "price_cap"
    customer: str
    subscription: str | None
    price: str
    currency: str
    maximum_amount: str


def _cap(row: store.PriceCapRow) -> PriceCapResource:
    return PriceCapResource(
        id=ids.format_id(ids.PRICE_CAP, row.id),
        created_at=row.recorded_at,
        customer=ids.format_id(ids.CUSTOMER, row.customer_id),
        subscription=_wire(ids.SUBSCRIPTION, row.subscription_id),
        price=ids.format_id(ids.PRICE, row.price_id),
        currency=row.currency,
        maximum_amount=str(row.maximum_amount),
    )


@router.post(
    "/price_caps", status_code=201, response_model=PriceCapResource, tags=["Commitments"], summary="Cap a usage price"
)
def create_cap(
    body: PriceCapBody, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> PriceCapResource:
    row = create_price_cap(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        PriceCapInput(
            customer_id=_customer(body.customer),
            subscription_id=_subscription(body.subscription),
            price_id=_price(body.price),
            maximum_amount=body.maximum_amount,
        ),
    )
    return _cap(row)


@router.get("/price_caps", response_model=ListResponse[PriceCapResource], tags=["Commitments"], summary="List caps")
def list_caps(
    request: Request,
    customer: CustomerFilter = None,
    page: PageRequest = Depends(page_request(ids.PRICE_CAP)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[PriceCapResource]:
    found = list_terms(
        tally.engine,
        principal.tenant_id,
        "price_cap",
        page,
        customer_id=None if customer is None else _customer(customer),
    )
    return list_response(found.map(_cap), request)


@router.get("/price_caps/{id}", response_model=PriceCapResource, tags=["Commitments"], summary="Get a cap")
def get_cap(
    id: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> PriceCapResource:
    cap_id = _parse(ids.PRICE_CAP, id, "price_cap_not_found", "id")
    return _cap(get_term(tally.engine, principal.tenant_id, "price_cap", cap_id, store.PriceCapRow))


# ----- tax rates -------------------------------------------------------------------------------------


class TaxRateBody(ApiModel):
    name: str = Field(max_length=200)
    percent: Decimal = Field(description="0 to 100.")
    customer: str | None = Field(default=None, description="`cus_…`; default: the tenant's default rate.")
    product: str | None = Field(default=None, max_length=64, description="Only this product's lines (code).")
    jurisdiction: str = Field(default="", max_length=200)


class TaxRateResource(Resource):
    object: Literal["tax_rate"] = "tax_rate"
    name: str
    percent: str
    customer: str | None
    product: str | None
    jurisdiction: str
    retired_at: datetime | None


def _tax_rate(row: store.TaxRateRow) -> TaxRateResource:
    return TaxRateResource(
        id=ids.format_id(ids.TAX_RATE, row.id),
        created_at=row.recorded_at,
        name=row.name,
        percent=str(row.percent),
        customer=_wire(ids.CUSTOMER, row.customer_id),
        product=row.product,
        jurisdiction=row.jurisdiction,
        retired_at=row.ended_at,
    )


@router.post("/tax_rates", status_code=201, response_model=TaxRateResource, tags=["Tax"], summary="Create a tax rate")
def create_tax_rate_route(
    body: TaxRateBody, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> TaxRateResource:
    row = create_tax_rate(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        TaxRateInput(
            name=body.name,
            percent=body.percent,
            customer_id=None if body.customer is None else _customer(body.customer),
            product=body.product,
            jurisdiction=body.jurisdiction,
        ),
    )
    return _tax_rate(row)


@router.get("/tax_rates", response_model=ListResponse[TaxRateResource], tags=["Tax"], summary="List tax rates")
def list_tax_rates(
    request: Request,
    customer: CustomerFilter = None,
    page: PageRequest = Depends(page_request(ids.TAX_RATE)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[TaxRateResource]:
    found = list_terms(
        tally.engine,
        principal.tenant_id,
        "tax_rate",
        page,
        customer_id=None if customer is None else _customer(customer),
    )
    return list_response(found.map(_tax_rate), request)


@router.get("/tax_rates/{id}", response_model=TaxRateResource, tags=["Tax"], summary="Get a tax rate")
def get_tax_rate(
    id: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> TaxRateResource:
    rate_id = _parse(ids.TAX_RATE, id, "tax_rate_not_found", "id")
    return _tax_rate(get_term(tally.engine, principal.tenant_id, "tax_rate", rate_id, store.TaxRateRow))


@router.post("/tax_rates/{id}/retire", response_model=TaxRateResource, tags=["Tax"], summary="Retire a tax rate")
def retire_tax_rate_route(
    id: str, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> TaxRateResource:
    """Invoices computed from now on no longer apply it; finalized invoices keep their tax."""
    rate_id = _parse(ids.TAX_RATE, id, "tax_rate_not_found", "id")
    return _tax_rate(retire_tax_rate(tally.engine, tally.clock, principal.tenant_id, rate_id))
