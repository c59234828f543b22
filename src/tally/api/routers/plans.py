"""/v1/plans: plans and their numbered versions.

A plan is a code and labels (changed with `PATCH /v1/plans/{code}`); what it sells lives in
versions. A version starts as a draft (one per plan) that can be edited; `publish` makes it
immutable forever (409 `plan_version_immutable` for any later edit — the database refuses it too),
so subscriptions can rely on it. A change is a new version. Moving subscriptions between versions is
an explicit operation of the subscriptions API. `DELETE /v1/plans/{code}` removes a plan that was
never published, with its draft (409 `plan_in_use` once a version is published).

Items name prices by id (`price_…`, active ones), with a default `quantity` for fixed fees (seats);
entitlements map feature codes to true/false (flags) or a whole number (limits).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import Field, StrictBool, StrictInt

from tally.adapters import ids
from tally.adapters.pagination import PageRequest
from tally.api.auth import Principal, require_scope
from tally.api.context import get_tally
from tally.api.labels import LabelsPatch
from tally.api.pagination import list_response, page_request
from tally.api.problems import register_status
from tally.api.schemas import ApiModel, ListResponse, Metadata, Resource
from tally.app import catalog_queries
from tally.app.create_plan import PlanInput, create_plan
from tally.app.create_plan_version import PlanVersionInput, create_plan_version
from tally.app.delete_catalog_object import delete_catalog_object
from tally.app.publish_plan_version import publish_plan_version
from tally.app.update_catalog_labels import Labeled, update_catalog_labels
from tally.app.update_plan_version import PlanVersionUpdate, update_plan_version
from tally.bootstrap import Tally
from tally.core.catalog.model import ENTITLEMENTS_MAX, PLAN_ITEMS_MAX, TRIAL_DAYS_MAX, PlanItem

router = APIRouter(prefix="/plans", tags=["Catalog"])

for _code in ("plan_code_taken", "plan_draft_version_exists", "plan_version_immutable", "plan_in_use"):
    register_status(_code, 409)

Entitlement = StrictBool | StrictInt


class CreatePlan(ApiModel):
    code: str = Field(min_length=1, max_length=63, description="Stable identifier: ^[a-z][a-z0-9_]{0,62}$.")
    name: str | None = Field(default=None, max_length=200, description="Default: the code.")
    description: str = Field(default="", max_length=1000)
    metadata: Metadata = Field(default_factory=dict)


class PlanResource(Resource):
    object: Literal["plan"] = "plan"
    code: str
    name: str
    description: str
    version: int | None = Field(description="The latest published version (what new subscriptions get).")
    draft_version: int | None
    latest_version: int = Field(description="The highest version number (0: none yet).")
    updated_at: datetime
    deleted: bool | None = Field(default=None, description="On delete: true.")


class ItemBody(ApiModel):
    price: str = Field(max_length=64, description="An active price's id (`price_…`).")
    quantity: int | None = Field(default=None, description="Fixed fees only: the default quantity (default 1).")


class CreateVersion(ApiModel):
    items: list[ItemBody] = Field(default_factory=list, max_length=PLAN_ITEMS_MAX)
    trial_days: int = Field(default=0, ge=0, le=TRIAL_DAYS_MAX)
    entitlements: dict[str, Entitlement] = Field(default_factory=dict, max_length=ENTITLEMENTS_MAX)


class UpdateVersion(ApiModel):
    """Any subset: the fields given replace the draft's."""

    items: list[ItemBody] | None = Field(default=None, max_length=PLAN_ITEMS_MAX)
    trial_days: int | None = Field(default=None, ge=0, le=TRIAL_DAYS_MAX)
    entitlements: dict[str, Entitlement] | None = Field(default=None, max_length=ENTITLEMENTS_MAX)


class ItemResource(ApiModel):
    price: str
    code: str
    quantity: int | None


class PlanVersionResource(Resource):
    object: Literal["plan_version"] = "plan_version"
    plan: str
    version: int
    status: Literal["draft", "published"]
    trial_days: int
    items: list[ItemResource]
    entitlements: dict[str, Entitlement]
    updated_at: datetime
    published_at: datetime | None


class VersionList(ApiModel):
    object: Literal["list"] = "list"
    data: list[PlanVersionResource]


def _plan(row: catalog_queries.PlanRow) -> PlanResource:
    return PlanResource(
        id=ids.format_id(ids.PLAN, row.id),
        created_at=row.created_at,
        metadata=row.metadata,
        code=row.code,
        name=row.name,
        description=row.description,
        version=row.published_version,
        draft_version=row.draft_version,
        latest_version=row.latest_version,
        updated_at=row.updated_at,
    )


def _version(row: catalog_queries.PlanVersionRow) -> PlanVersionResource:
    return PlanVersionResource(
        id=ids.format_id(ids.PLAN_VERSION, row.id),
        created_at=row.created_at,
        plan=row.plan_code,
        version=row.version,
        status=row.status,  # type: ignore[arg-type]
        trial_days=row.trial_days,
        items=[
            ItemResource(price=ids.format_id(ids.PRICE, item.price_id), code=item.price_code, quantity=item.quantity)
            for item in row.items
        ],
        entitlements=row.entitlements,
        updated_at=row.updated_at,
        published_at=row.published_at,
    )


def _items(items: list[ItemBody]) -> tuple[PlanItem, ...]:
    return tuple(PlanItem(price=item.price, quantity=item.quantity) for item in items)


@router.post("", status_code=201, response_model=PlanResource, summary="Create a plan (no version yet)")
def create(
    body: CreatePlan, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> PlanResource:
    row = create_plan(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        PlanInput(code=body.code, name=body.name, description=body.description, metadata=body.metadata),
    )
    return _plan(row)


@router.get("", response_model=ListResponse[PlanResource], summary="List plans, oldest first")
def list_plans(
    request: Request,
    page: PageRequest = Depends(page_request(ids.PLAN)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[PlanResource]:
    found = catalog_queries.list_plans(tally.engine, principal.tenant_id, page)
    return list_response(found.map(_plan), request)


@router.get("/{code}", response_model=PlanResource, summary="Get a plan by code")
def get_plan(
    code: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> PlanResource:
    return _plan(catalog_queries.get_plan(tally.engine, principal.tenant_id, code))


@router.post(
    "/{code}/versions", status_code=201, response_model=PlanVersionResource, summary="Create the plan's draft version"
)
def create_version(
    code: str, body: CreateVersion, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> PlanVersionResource:
    """The next version number, as a draft. 409 `plan_draft_version_exists` when the plan has one."""
    row = create_plan_version(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        code,
        PlanVersionInput(items=_items(body.items), trial_days=body.trial_days, entitlements=body.entitlements),
    )
    return _version(row)


@router.get("/{code}/versions", response_model=VersionList, summary="A plan's versions, oldest first")
def list_versions(
    code: str, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> VersionList:
    return VersionList(
        data=[_version(row) for row in catalog_queries.list_plan_versions(tally.engine, principal.tenant_id, code)]
    )


@router.get("/{code}/versions/{version}", response_model=PlanVersionResource, summary="Get a plan version")
def get_version(
    code: str, version: int, principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> PlanVersionResource:
    return _version(catalog_queries.get_plan_version(tally.engine, principal.tenant_id, code, version))


def _update(tally: Tally, principal: Principal, code: str, version: int, body: UpdateVersion) -> PlanVersionResource:
    row = update_plan_version(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        code,
        number=version,
        update=PlanVersionUpdate(
            items=_items(body.items) if body.items is not None else None,
            trial_days=body.trial_days,
            entitlements=body.entitlements,
        ),
    )
    return _version(row)


@router.patch("/{code}/versions/{version}", response_model=PlanVersionResource, summary="Edit a draft version")
def patch_version(
    code: str,
    version: int,
    body: UpdateVersion,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> PlanVersionResource:
    """409 `plan_version_immutable` once published."""
    return _update(tally, principal, code, version, body)


@router.post("/{code}/versions/{version}", response_model=PlanVersionResource, summary="Edit a draft (same as PATCH)")
def post_version(
    code: str,
    version: int,
    body: UpdateVersion,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> PlanVersionResource:
    return _update(tally, principal, code, version, body)


@router.post("/{code}/versions/{version}/publish", response_model=PlanVersionResource, summary="Publish a draft")
def publish(
    code: str, version: int, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> PlanVersionResource:
    """From now on the version never changes. Its prices must still be active."""
    return _version(publish_plan_version(tally.engine, tally.clock, principal.tenant_id, code, version))


class PlanLabelsPatch(LabelsPatch):
    IMMUTABLE: ClassVar[dict[str, str]] = {
        **LabelsPatch.IMMUTABLE,
        **dict.fromkeys(
            ("items", "trial_days", "entitlements", "version"),
            "what a plan sells lives in its versions: edit the draft or create a new version",
        ),
    }


@router.patch("/{code}", response_model=PlanResource, summary="Change a plan's labels")
def patch_plan(
    code: str, body: PlanLabelsPatch, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> PlanResource:
    """`name`, `description`, `metadata` (replaced whole). Prices, trial and entitlements live in
    versions (`field_immutable` here); the code never changes."""
    return _plan(
        update_catalog_labels(
            tally.engine, tally.clock, principal.tenant_id, kind=Labeled.PLAN, code=code, update=body.update()
        )
    )


@router.delete("/{code}", response_model=PlanResource, summary="Delete a plan that was never published")
def delete_plan(
    code: str, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> PlanResource:
    """Deletes the plan and its draft version. 409 `plan_in_use` once any version is published
    (subscriptions may rely on it): publish a new version instead. Answers the plan as it was, with
    `deleted: true`."""
    resource = _plan(delete_catalog_object(tally.engine, principal.tenant_id, kind=Labeled.PLAN, code=code))
    resource.deleted = True
    return resource
