"""/v1/customers: the company's customers. Reading needs `read`; creating and changing need `admin`.

`external_id` is the company's own id for the customer — the `customer` field of its usage events —
unique per tenant: a second create with a taken external id answers 409 `customer_external_id_taken`
(retry creates safely with an Idempotency-Key). `GET /v1/customers?external_id=…` looks one up.
`POST /v1/customers/{id}` (or PATCH) changes the fields sent; `currency` is set once.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field

from tally.adapters import ids
from tally.adapters.pagination import Page, PageRequest
from tally.api.auth import Principal, require_scope
from tally.api.context import get_tally
from tally.api.pagination import list_response, page_request
from tally.api.problems import register_status
from tally.api.schemas import ApiModel, ListResponse, Resource
from tally.app import customer_queries
from tally.app.create_customer import CustomerInput, create_customer
from tally.app.update_customer import UNCHANGED, CustomerUpdate, update_customer
from tally.bootstrap import Tally
from tally.core.customers import (
    ADDRESS_LINE_LENGTH_MAX,
    EMAIL_LENGTH_MAX,
    EXTERNAL_ID_LENGTH_MAX,
    NAME_LENGTH_MAX,
    TAX_ID_VALUE_LENGTH_MAX,
    TAX_IDS_MAX,
    TIMEZONE_DEFAULT,
    Address,
    TaxId,
)
from tally.core.rejections import Rejected

router = APIRouter(prefix="/customers", tags=["Customers"])

register_status("customer_external_id_taken", 409)
register_status("customer_currency_immutable", 409)

# Bodies are bounded by the request size limit; these caps only keep a hostile list or map from
# being parsed in full before the precise check (and its precise code) in tally.core.customers.
_LIST_CAP = TAX_IDS_MAX * 10
_MAP_CAP = 1000


class AddressBody(ApiModel):
    line1: str | None = Field(default=None, max_length=ADDRESS_LINE_LENGTH_MAX * 10)
    line2: str | None = Field(default=None, max_length=ADDRESS_LINE_LENGTH_MAX * 10)
    city: str | None = Field(default=None, max_length=ADDRESS_LINE_LENGTH_MAX * 10)
    state: str | None = Field(default=None, max_length=ADDRESS_LINE_LENGTH_MAX * 10)
    postal_code: str | None = Field(default=None, max_length=ADDRESS_LINE_LENGTH_MAX * 10)
    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2, upper case (US, DE).")

    def to_core(self) -> Address:
        return Address(**self.model_dump())


class TaxIdBody(ApiModel):
    type: str = Field(max_length=20, description="Region and scheme, e.g. eu_vat, us_ein, gb_vat.")
    value: str = Field(max_length=TAX_ID_VALUE_LENGTH_MAX * 10)

    def to_core(self) -> TaxId:
        return TaxId(self.type, self.value)


class CreateCustomer(ApiModel):
    external_id: str = Field(
        max_length=EXTERNAL_ID_LENGTH_MAX * 4, description="Your id for the customer: the `customer` of its events."
    )
    name: str | None = Field(default=None, max_length=NAME_LENGTH_MAX * 10, description="Default: the external id.")
    email: str | None = Field(default=None, max_length=EMAIL_LENGTH_MAX * 4)
    currency: str | None = Field(
        default=None, max_length=16, description="ISO 4217 (USD) or one of your units (CREDITS). Set once."
    )
    billing_address: AddressBody | None = None
    tax_ids: list[TaxIdBody] = Field(default_factory=list, max_length=_LIST_CAP)
    timezone: str = Field(default=TIMEZONE_DEFAULT, max_length=64, description="IANA name, e.g. Europe/Paris.")
    metadata: dict[str, str] = Field(default_factory=dict, max_length=_MAP_CAP)
    test_clock: str | None = Field(
        default=None, description="A test clock id (`clk_…`): the customer lives at its time."
    )


class UpdateCustomer(ApiModel):
    """Any subset of fields. `email` and `billing_address` are cleared with null; lists and metadata are
    replaced as sent. `external_id` and `test_clock` never change."""

    name: str | None = Field(default=None, max_length=NAME_LENGTH_MAX * 10)
    email: str | None = Field(default=None, max_length=EMAIL_LENGTH_MAX * 4)
    currency: str | None = Field(default=None, max_length=16)
    billing_address: AddressBody | None = None
    tax_ids: list[TaxIdBody] | None = Field(default=None, max_length=_LIST_CAP)
    timezone: str | None = Field(default=None, max_length=64)
    metadata: dict[str, str] | None = Field(default=None, max_length=_MAP_CAP)


class AddressResource(ApiModel):
    line1: str | None
    line2: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    country: str | None


class TaxIdResource(ApiModel):
    type: str
    value: str


class CustomerResource(Resource):
    object: Literal["customer"] = "customer"
    external_id: str
    name: str
    email: str | None
    currency: str | None
    billing_address: AddressResource | None
    tax_ids: list[TaxIdResource]
    timezone: str
    test_clock: str | None = Field(description="The test clock the customer lives on, if any.")
    updated_at: datetime


def customer_resource(customer: customer_queries.Customer) -> CustomerResource:
    address = customer.billing_address
    return CustomerResource(
        id=ids.format_id(ids.CUSTOMER, customer.id),
        created_at=customer.created_at,
        metadata=dict(customer.metadata),
        external_id=customer.external_id,
        name=customer.name,
        email=customer.email,
        currency=customer.currency,
        billing_address=AddressResource(**{name: getattr(address, name) for name in AddressResource.model_fields})
        if address is not None
        else None,
        tax_ids=[TaxIdResource(type=tax_id.type, value=tax_id.value) for tax_id in customer.tax_ids],
        timezone=customer.timezone,
        test_clock=ids.format_id(ids.TEST_CLOCK, customer.test_clock_id) if customer.test_clock_id else None,
        updated_at=customer.updated_at,
    )


def _customer_id(text: str) -> uuid.UUID:
    parsed = ids.parse_id(ids.CUSTOMER, text)
    if parsed is None:
        raise Rejected.because("customer_not_found", "no such customer", "id")
    return parsed


def _test_clock_id(text: str) -> uuid.UUID:
    parsed = ids.parse_id(ids.TEST_CLOCK, text)
    if parsed is None:
        raise Rejected.because("test_clock_not_found", "no such test clock", "test_clock")
    return parsed


@router.post("", status_code=201, response_model=CustomerResource, summary="Create a customer")
def create(
    body: CreateCustomer, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> CustomerResource:
    """409 `customer_external_id_taken` when the external id already names a customer."""
    customer = create_customer(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        CustomerInput(
            external_id=body.external_id,
            name=body.name,
            email=body.email,
            currency=body.currency,
            billing_address=body.billing_address.to_core() if body.billing_address else None,
            tax_ids=tuple(tax_id.to_core() for tax_id in body.tax_ids),
            timezone=body.timezone,
            metadata=body.metadata,
            test_clock_id=_test_clock_id(body.test_clock) if body.test_clock is not None else None,
        ),
    )
    return customer_resource(customer)


@router.get("", response_model=ListResponse[CustomerResource], summary="List customers, newest first")
def list_customers(
    request: Request,
    external_id: Annotated[
        str | None, Query(max_length=EXTERNAL_ID_LENGTH_MAX, description="Only the customer with this external id.")
    ] = None,
    test_clock: Annotated[str | None, Query(description="Only the customers on this test clock.")] = None,
    page: PageRequest = Depends(page_request(ids.CUSTOMER)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[CustomerResource]:
    found: Page[customer_queries.Customer]
    if external_id is not None:
        customer = customer_queries.find_customer_by_external_id(tally.engine, principal.tenant_id, external_id)
        found = Page(items=[customer] if customer else [], has_more=False)
    else:
        clock_id = _test_clock_id(test_clock) if test_clock is not None else None
        found = customer_queries.list_customers(tally.engine, principal.tenant_id, page, test_clock_id=clock_id)
    return list_response(found.map(customer_resource), request)


@router.get("/{id}", response_model=CustomerResource, summary="Get a customer")
def get_customer(
    id: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> CustomerResource:
    return customer_resource(customer_queries.get_customer(tally.engine, principal.tenant_id, _customer_id(id)))


def _update(tally: Tally, principal: Principal, id: str, body: UpdateCustomer) -> CustomerResource:
    sent = body.model_fields_set
    for required in ("name", "currency", "tax_ids", "timezone", "metadata"):
        if required in sent and getattr(body, required) is None:
            raise Rejected.because("value_must_not_be_null", f"{required} cannot be null", required)
    update = CustomerUpdate(
        name=body.name if body.name is not None else UNCHANGED,
        email=body.email if "email" in sent else UNCHANGED,
        currency=body.currency if body.currency is not None else UNCHANGED,
        billing_address=(body.billing_address.to_core() if body.billing_address else None)
        if "billing_address" in sent
        else UNCHANGED,
        tax_ids=tuple(tax_id.to_core() for tax_id in body.tax_ids) if body.tax_ids is not None else UNCHANGED,
        timezone=body.timezone if body.timezone is not None else UNCHANGED,
        metadata=body.metadata if body.metadata is not None else UNCHANGED,
    )
    customer = update_customer(tally.engine, tally.clock, principal.tenant_id, _customer_id(id), update)
    return customer_resource(customer)


@router.post("/{id}", response_model=CustomerResource, summary="Update a customer")
def post_customer(
    id: str, body: UpdateCustomer, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> CustomerResource:
    """The fields sent change; the others stay. A different `currency` once one is set answers 409
    `customer_currency_immutable`."""
    return _update(tally, principal, id, body)


@router.patch("/{id}", response_model=CustomerResource, summary="Update a customer (same as POST)")
def patch_customer(
    id: str, body: UpdateCustomer, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> CustomerResource:
    return _update(tally, principal, id, body)
