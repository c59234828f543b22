"""Resume a paused subscription, now or at a given moment: the rest of the current period is charged,
prorated, on the same anchor."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.app._subscription_write import Context, Subscription, When, record
from tally.core.subscriptions import Resumed, TimelineEntry


def resume_subscription(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, subscription_id: uuid.UUID, at: datetime | None = None
) -> Subscription:
    def decide(context: Context) -> list[TimelineEntry]:
        return [Resumed(effective_at=context.resolve(at if at is not None else When.NOW))]

    return record(engine, clock, tenant_id, subscription_id, decide)
