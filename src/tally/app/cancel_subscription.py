"""Cancel a subscription: now (it ends at once; with `prorate`, the unused part of fees billed is
credited), at the end of the current term (a scheduled end, which `unschedule_cancel` can undo until
then), or at a given moment (in the future: scheduled; at or before now: it ends then).

A cancel supersedes the changes scheduled at or after the end it sets (a downgrade at period end, a
later phase): they could never take effect. Each is withdrawn by its own `Withdrawn` fact, recorded
with the cancel in one transaction, so the timeline says what the cancel took back
(`Subscription.recorded`). Undoing the cancel later does not bring them back. Facts already in
effect are never withdrawn: a cancel dated before one of them is refused (`change_dated_after_end`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.app._subscription_write import Context, Effective, Subscription, When, record
from tally.core.subscriptions import Canceled, CancelScheduled, TimelineEntry, Withdrawn, scheduled_changes


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancellation:
    effective: Effective = When.NOW
    prorate: bool = True


def cancel_subscription(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, subscription_id: uuid.UUID, cancellation: Cancellation
) -> Subscription:
    def decide(context: Context) -> list[TimelineEntry]:
        ends_at = context.resolve(cancellation.effective)
        entries = context.timeline.entries
        superseded: list[TimelineEntry] = [
            Withdrawn(effective_at=context.now, withdraws=position)
            for position in scheduled_changes(context.timeline, context.now)
            if entries[position].effective_at >= ends_at
        ]
        if ends_at <= context.now:
            return [*superseded, Canceled(effective_at=ends_at, prorate=cancellation.prorate)]
        return [*superseded, CancelScheduled(effective_at=context.now, ends_at=ends_at, prorate=cancellation.prorate)]

    return record(engine, clock, tenant_id, subscription_id, decide)
