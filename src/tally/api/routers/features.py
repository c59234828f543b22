"""/v1/features: what plans grant — a boolean flag or a numeric limit. Plans store entitlements to
them; enforcing entitlements is a later module's. A feature's code and kind never change; its name
and metadata do (`PATCH /v1/features/{code}`). `DELETE /v1/features/{code}` removes a feature no plan
version grants (409 `feature_in_use` otherwise)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

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
from tally.app.create_feature import FeatureInput, create_feature
from tally.app.delete_catalog_object import delete_catalog_object
from tally.app.update_catalog_labels import Labeled, update_catalog_labels
from tally.bootstrap import Tally

router = APIRouter(prefix="/features", tags=["Catalog"])

register_status("feature_code_taken", 409)
register_status("feature_in_use", 409)


class CreateFeature(ApiModel):
    code: str = Field(min_length=1, max_length=63, description="Stable identifier: ^[a-z][a-z0-9_]{0,62}$.")
    kind: Literal["boolean", "limit"] = Field(description="boolean: a flag; limit: a whole number granted.")
    name: str | None = Field(default=None, max_length=200, description="Default: the code.")
    metadata: Metadata = Field(default_factory=dict)


class FeatureResource(Resource):
    object: Literal["feature"] = "feature"
    code: str
    name: str
    kind: Literal["boolean", "limit"]
    updated_at: datetime
    deleted: bool | None = Field(default=None, description="On delete: true.")


def _feature(row: catalog_queries.FeatureRow) -> FeatureResource:
    return FeatureResource(
        id=ids.format_id(ids.FEATURE, row.id),
        created_at=row.created_at,
        metadata=row.metadata,
        code=row.code,
        name=row.name,
        kind=row.kind,  # type: ignore[arg-type]
        updated_at=row.updated_at,
    )


@router.post("", status_code=201, response_model=FeatureResource, summary="Create a feature")
def create(
    body: CreateFeature, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> FeatureResource:
    row = create_feature(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        FeatureInput(code=body.code, kind=body.kind, name=body.name, metadata=body.metadata),
    )
    return _feature(row)


@router.get("", response_model=ListResponse[FeatureResource], summary="List features, oldest first")
def list_features(
    request: Request,
    page: PageRequest = Depends(page_request(ids.FEATURE)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[FeatureResource]:
    found = catalog_queries.list_features(tally.engine, principal.tenant_id, page)
    return list_response(found.map(_feature), request)


@router.get("/{code}", response_model=FeatureResource, summary="Get a feature by code")
def get_feature(
    code: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> FeatureResource:
    return _feature(catalog_queries.get_feature(tally.engine, principal.tenant_id, code))


class FeatureLabelsPatch(LabelsPatch):
    IMMUTABLE: ClassVar[dict[str, str]] = {
        **LabelsPatch.IMMUTABLE,
        "kind": "plans grant entitlements of this kind; a different kind is a new feature",
    }


@router.patch("/{code}", response_model=FeatureResource, summary="Change a feature's labels")
def patch_feature(
    code: str,
    body: FeatureLabelsPatch,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> FeatureResource:
    """`name` and `metadata` (replaced whole). A feature has no description
    (`feature_description_not_supported`); its code and kind never change (`field_immutable`)."""
    return _feature(
        update_catalog_labels(
            tally.engine, tally.clock, principal.tenant_id, kind=Labeled.FEATURE, code=code, update=body.update()
        )
    )


@router.delete("/{code}", response_model=FeatureResource, summary="Delete a feature no plan version grants")
def delete_feature(
    code: str, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> FeatureResource:
    """409 `feature_in_use` while any plan version, draft or published, grants it. Answers the
    feature as it was, with `deleted: true`."""
    resource = _feature(delete_catalog_object(tally.engine, principal.tenant_id, kind=Labeled.FEATURE, code=code))
    resource.deleted = True
    return resource
