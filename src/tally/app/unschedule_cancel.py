"""Undo a scheduled cancel before the subscription ends: a new fact (`CancelUnscheduled`), never an
edit of the old one. Without a pending cancel it is rejected `cancel_not_scheduled`."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.app._subscription_write import Context, Subscription, record
from tally.core.subscriptions import CancelUnscheduled, TimelineEntry


def unschedule_cancel(engine: Engine, clock: Clock, tenant_id: uuid.UUID, subscription_id: uuid.UUID) -> Subscription:
    def decide(context: Context) -> list[TimelineEntry]:
        return [CancelUnscheduled(effective_at=context.now)]

    return record(engine, clock, tenant_id, subscription_id, decide)
