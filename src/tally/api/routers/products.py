"""/v1/products and /v1/features: what prices belong to, and what plans grant.

Reading needs `read`; creating, relabeling and deleting need `admin`. Codes are stable and unique
per tenant (409 `product_code_taken` / `feature_code_taken`). Labels (name, description, metadata)
change with `PATCH /v1/products/{code}` or catalog files (`tally catalog apply`); codes never do.
`DELETE /v1/products/{code}` removes a product no price belongs to (409 `product_in_use` otherwise).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from tally.adapters import ids
from tally.adapters.pagination import PageRequest
from tally.api.auth import Principal, require_scope
from tally.api.context import get_tally
from tally.api.labels import LabelsPatch
from tally.api.pagination import list_response, page_request
from tally.api.problems import register_status
from tally.api.schemas import ApiModel, ListResponse, Metadata, Resource
from tally.app import catalog_queries
from tally.app.create_product import ProductInput, create_product
from tally.app.delete_catalog_object import delete_catalog_object
from tally.app.update_catalog_labels import Labeled, update_catalog_labels
from tally.bootstrap import Tally

router = APIRouter(prefix="/products", tags=["Catalog"])

register_status("product_code_taken", 409)
register_status("product_in_use", 409)


class CreateProduct(ApiModel):
    code: str = Field(min_length=1, max_length=63, description="Stable identifier: ^[a-z][a-z0-9_]{0,62}$.")
    name: str | None = Field(default=None, max_length=200, description="Default: the code.")
    description: str = Field(default="", max_length=1000)
    metadata: Metadata = Field(default_factory=dict)


class ProductResource(Resource):
    object: Literal["product"] = "product"
    code: str
    name: str
    description: str
    updated_at: datetime
    deleted: bool | None = Field(default=None, description="On delete: true.")


def _product(row: catalog_queries.ProductRow) -> ProductResource:
    return ProductResource(
        id=ids.format_id(ids.PRODUCT, row.id),
        created_at=row.created_at,
        metadata=row.metadata,
        code=row.code,
        name=row.name,
        description=row.description,
        updated_at=row.updated_at,
    )


@router.post("", status_code=201, response_model=ProductResource, summary="Create a product")
def create(
    body: CreateProduct, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> ProductResource:
    row = create_product(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        ProductInput(code=body.code, name=body.name, description=body.description, metadata=body.metadata),
    )
    return _product(row)


@router.get("", response_model=ListResponse[ProductResource], summary="List products, oldest first")
def list_products(
    request: Request,
    page: PageRequest = Depends(page_request(ids.PRODUCT)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[ProductResource]:
    found = catalog_queries.list_products(tally.engine, principal.tenant_id, page)
    return list_response(found.map(_product), request)


@router.get("/{code}", response_model=ProductResource, summary="Get a product by code")
def get_product(
    code: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> ProductResource:
    return _product(catalog_queries.get_product(tally.engine, principal.tenant_id, code))


@router.patch("/{code}", response_model=ProductResource, summary="Change a product's labels")
def patch_product(
    code: str, body: LabelsPatch, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> ProductResource:
    """`name`, `description`, `metadata` (replaced whole); the code never changes (`field_immutable`)."""
    return _product(
        update_catalog_labels(
            tally.engine, tally.clock, principal.tenant_id, kind=Labeled.PRODUCT, code=code, update=body.update()
        )
    )


@router.delete("/{code}", response_model=ProductResource, summary="Delete a product no price belongs to")
def delete_product(
    code: str, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> ProductResource:
    """409 `product_in_use` once any price (active or archived) belongs to it: archive its prices to
    retire it. Answers the product as it was, with `deleted: true`."""
    resource = _product(delete_catalog_object(tally.engine, principal.tenant_id, kind=Labeled.PRODUCT, code=code))
    resource.deleted = True
    return resource
