"""Pause a subscription, now or at a given moment: no billing until it is resumed. The fee already
charged for the current period is credited for the rest of it; the anchor does not move."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.app._subscription_write import Context, Subscription, When, record
from tally.core.subscriptions import Paused, TimelineEntry


def pause_subscription(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, subscription_id: uuid.UUID, at: datetime | None = None
) -> Subscription:
    def decide(context: Context) -> list[TimelineEntry]:
        return [Paused(effective_at=context.resolve(at if at is not None else When.NOW))]

    return record(engine, clock, tenant_id, subscription_id, decide)
