"""Late usage: the tenant's policy for it, and the flags metering raises.

- `GET` / `PUT /v1/account/billing_settings` (`read` / `admin`): `late_usage_policy`, `next_invoice`
  (default) or `separate` (tally.core.invoicing.late_usage). A value outside those answers 422
  `late_usage_policy_unknown`.
- `GET /v1/late_usage?customer=&status=open|resolved` (`read`): usage that arrived or changed after
  its period was invoiced, newest first, with what resolved it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field

from tally.adapters import ids
from tally.adapters.pagination import PageRequest
from tally.api.auth import Principal, require_scope
from tally.api.context import get_tally
from tally.api.pagination import list_response, page_request
from tally.api.schemas import ApiModel, ListResponse, Resource
from tally.app.late_usage_queries import FlagStatus, LateUsageFlag, list_late_usage
from tally.app.tenant_billing_settings import (
    BillingSettings,
    BillingSettingsInput,
    get_billing_settings,
    set_billing_settings,
)
from tally.bootstrap import Tally
from tally.core.invoicing import LateUsagePolicy
from tally.core.rejections import Rejected

router = APIRouter(tags=["Account"])


class BillingSettingsBody(ApiModel):
    late_usage_policy: str = Field(
        max_length=64,
        description=f"One of {', '.join(LateUsagePolicy)}: where the difference for a finalized period goes.",
    )


class BillingSettingsResource(ApiModel):
    object: Literal["billing_settings"] = "billing_settings"
    late_usage_policy: LateUsagePolicy
    recorded_at: datetime | None = Field(description="When these settings were set; null: the defaults.")


def _settings(settings: BillingSettings) -> BillingSettingsResource:
    return BillingSettingsResource(late_usage_policy=settings.late_usage_policy, recorded_at=settings.recorded_at)


@router.get(
    "/account/billing_settings", response_model=BillingSettingsResource, summary="The tenant's billing settings"
)
def get_settings(
    principal: Principal = require_scope("read"), tally: Tally = Depends(get_tally)
) -> BillingSettingsResource:
    return _settings(get_billing_settings(tally.engine, principal.tenant_id))


@router.put(
    "/account/billing_settings", response_model=BillingSettingsResource, summary="Set the tenant's billing settings"
)
def put_settings(
    body: BillingSettingsBody, principal: Principal = require_scope("admin"), tally: Tally = Depends(get_tally)
) -> BillingSettingsResource:
    """In force from the next billing run on; each change is kept on record. The same value again writes nothing."""
    settings, _ = set_billing_settings(
        tally.engine,
        tally.clock,
        principal.tenant_id,
        BillingSettingsInput(late_usage_policy=body.late_usage_policy),
    )
    return _settings(settings)


class LateUsageResource(Resource):
    object: Literal["late_usage"] = "late_usage"
    customer: str = Field(description="The customer's external id, as the event carries it.")
    event_id: str
    timestamp: datetime = Field(description="When the usage happened.")
    kind: Literal["late_event", "retract", "amend"]
    status: FlagStatus
    resolved_at: datetime | None
    resolution: str | None = Field(
        description="`invoice:in_…` (the finalized invoice that billed the difference; open while it is a "
        "draft), `credit_note:cn_…`, `no_change` (recomputing billed no difference) or `beyond_horizon` "
        "(never billed: reported by the integrity check; no path produces it)."
    )


def _resolution(text: str | None) -> str | None:
    if text is None:
        return None
    target, _, value = text.partition(":")
    if target == "invoice":
        return f"invoice:{ids.format_id(ids.INVOICE, uuid.UUID(value))}"
    if target == "credit_note":
        return f"credit_note:{ids.format_id(ids.CREDIT_NOTE, uuid.UUID(value))}"
    return text


def _flag(flag: LateUsageFlag) -> LateUsageResource:
    return LateUsageResource(
        id=ids.format_id(ids.LATE_USAGE, flag.id),
        created_at=flag.flagged_at,
        customer=flag.customer,
        event_id=flag.event_id,
        timestamp=flag.timestamp,
        kind=flag.kind,  # type: ignore[arg-type]
        status=FlagStatus.OPEN if flag.resolved_at is None else FlagStatus.RESOLVED,
        resolved_at=flag.resolved_at,
        resolution=_resolution(flag.resolution),
    )


@router.get(
    "/late_usage",
    response_model=ListResponse[LateUsageResource],
    tags=["Invoices"],
    summary="Usage that arrived or changed after its period was invoiced, newest first",
)
def list_flags(
    request: Request,
    customer: Annotated[str | None, Query(description="Only this customer's flags (`cus_…`).")] = None,
    status: Annotated[FlagStatus | None, Query(description="`open` or `resolved`.")] = None,
    page: PageRequest = Depends(page_request(ids.LATE_USAGE)),
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[LateUsageResource]:
    customer_id = None
    if customer is not None:
        customer_id = ids.parse_id(ids.CUSTOMER, customer)
        if customer_id is None:
            raise Rejected.because("customer_not_found", "no such customer", "customer")
    found = list_late_usage(tally.engine, principal.tenant_id, page, customer_id=customer_id, status=status)
    return list_response(found.map(_flag), request)
