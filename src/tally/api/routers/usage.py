"""/v1/usage: one customer's usage of one meter over a half-open window, exact (scope `read`).

    GET /v1/usage?customer=acme&meter=tokens&from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z
                 &granularity=day&group_by=model

Values are decimal strings, never JSON numbers (a client's float would round them). Buckets are UTC;
`timezone` is accepted for forward compatibility and must be UTC for now. An event accepted a moment
ago is already counted: the answer adds the raw events not yet rolled up (see docs/metering.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from tally.api.auth import Principal, require_scope
from tally.api.context import get_tally
from tally.api.schemas import ApiModel
from tally.app.query_usage import UsageRequest, query_usage
from tally.bootstrap import Tally
from tally.core.metering.meters import GROUP_BY_MAX
from tally.core.metering.usage import BUCKETS_MAX, Granularity, UsageResult, quantity_text
from tally.core.rejections import Rejected

router = APIRouter(prefix="/usage", tags=["Usage"])


class UsageBucket(ApiModel):
    from_: datetime = Field(alias="from", description="Start of the bucket (inclusive), clipped to the window.")
    to: datetime = Field(description="End of the bucket (exclusive), clipped to the window.")
    group: dict[str, str | None] = Field(description="The group_by values of this row (null: property missing).")
    value: str | None = Field(
        description="Exact decimal as a string; null for max/min/latest without any value in the bucket."
    )
    event_count: int = Field(description="Events that contributed a value.")
    skipped_events: int = Field(description="Matching events left out: value missing or not numeric.")


class UsageResponse(ApiModel):
    object: Literal["usage"] = "usage"
    customer: str
    meter: str
    meter_version: int
    aggregation: str
    from_: datetime = Field(alias="from")
    to: datetime
    granularity: Granularity
    group_by: list[str]
    timezone: str
    skipped_events: int = Field(description="Matching events excluded because their value is missing or not numeric.")
    source: Literal["rollups", "raw"] = Field(description="rollups (+ raw tail and edges), or raw events only.")
    data: list[UsageBucket]


def _response(result: UsageResult) -> UsageResponse:
    query = result.query
    return UsageResponse.model_validate(
        {
            "customer": query.customer,
            "meter": query.meter.code,
            "meter_version": query.meter.version,
            "aggregation": query.meter.definition.kind.value,
            "from": query.start,
            "to": query.end,
            "granularity": query.granularity,
            "group_by": list(query.group_by),
            "timezone": query.timezone,
            "skipped_events": result.skipped_events,
            "source": result.source,
            "data": [
                {
                    "from": row.bucket.start,
                    "to": row.bucket.end,
                    "group": result.group_dict(row),
                    "value": quantity_text(row.value) if row.value is not None else None,
                    "event_count": row.event_count,
                    "skipped_events": row.skipped_events,
                }
                for row in result.rows
            ],
        }
    )


def _group_by(values: list[str]) -> tuple[str, ...]:
    keys = tuple(key.strip() for value in values for key in value.split(",") if key.strip())
    if len(keys) > GROUP_BY_MAX:
        raise Rejected.because("group_by_exceeds_limit", f"group by at most {GROUP_BY_MAX} keys", "group_by")
    return keys


@router.get("", response_model=UsageResponse, response_model_by_alias=True, summary="Usage of one meter")
def get_usage(
    customer: Annotated[str, Query(min_length=1, max_length=255, description="The customer id events carry.")],
    meter: Annotated[str, Query(min_length=1, max_length=63, description="The meter code.")],
    start: Annotated[datetime, Query(alias="from", description="Window start (inclusive), with a UTC offset.")],
    end: Annotated[datetime, Query(alias="to", description="Window end (exclusive), with a UTC offset.")],
    granularity: Annotated[
        Granularity, Query(description=f"hour, day, month (UTC) or total; at most {BUCKETS_MAX} buckets.")
    ] = Granularity.TOTAL,
    group_by: Annotated[
        list[str], Query(description="Keys of the meter's group_by: repeat it or separate with commas.")
    ] = [],  # noqa: B006 - FastAPI copies query defaults
    meter_version: Annotated[int | None, Query(ge=1, description="Default: the latest version.")] = None,
    timezone: Annotated[str, Query(description="Bucket time zone (only UTC for now).")] = "UTC",
    principal: Principal = require_scope("read"),
    tally: Tally = Depends(get_tally),
) -> UsageResponse:
    """Exact usage: half-open window `[from, to)`, UTC buckets, one row per group and bucket."""
    result = query_usage(
        tally.engine,
        principal.tenant_id,
        UsageRequest(
            customer=customer,
            meter_code=meter,
            start=start,
            end=end,
            granularity=granularity,
            group_by=_group_by(group_by),
            meter_version=meter_version,
            timezone=timezone,
        ),
    )
    return _response(result)
