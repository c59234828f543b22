"""Query usage: resolve the meter version a request names, then ask the event store.

The HTTP API and the CLI come through here; pricing and invoicing, which already hold meter
versions, call the `EventStore` directly.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from tally.app.event_store import EventStore, open_event_store
from tally.app.meter_queries import resolve_version
from tally.core.metering.usage import Granularity, UsageQuery, UsageResult
from tally.core.rejections import Rejected


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageRequest:
    customer: str
    meter_code: str
    start: datetime
    end: datetime
    granularity: Granularity = Granularity.TOTAL
    group_by: tuple[str, ...] = ()
    meter_version: int | None = None
    timezone: str = "UTC"


def query_usage(
    engine: Engine, tenant_id: uuid.UUID, request: UsageRequest, store: EventStore | None = None
) -> UsageResult:
    # The window is checked before the meter is looked up: an inverted range is wrong for any meter.
    if request.start.tzinfo is not None and request.end.tzinfo is not None and request.start >= request.end:
        raise Rejected.because("time_range_inverted", "`from` must be before `to` (the window is [from, to))", "to")
    meter = resolve_version(engine, tenant_id, request.meter_code, request.meter_version)
    query = UsageQuery(
        customer=request.customer,
        meter=meter,
        start=request.start,
        end=request.end,
        granularity=request.granularity,
        group_by=request.group_by,
        timezone=request.timezone,
    )
    return (store or open_event_store(engine)).usage(tenant_id, query)
