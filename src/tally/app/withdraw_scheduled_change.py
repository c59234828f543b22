"""Withdraw a scheduled change before it takes effect: a plan change at period end, a phase, a
quantity change, a pause or resume recorded for later. The timeline stays append-only: a new fact
(`Withdrawn`) names the withdrawn one by its sequence, and the core reads the timeline as if that
fact had never been recorded.

The core refuses, with stable codes: no such fact (`change_not_found`), the start or a withdrawal
(`change_not_withdrawable`), a fact withdrawn already (`change_already_withdrawn`), and one that
has taken effect at the customer's now (`change_already_in_effect`: it may have been billed;
correct it with a new change). A later fact that depends on the withdrawn one (a quantity change of
a price only the withdrawn change adds, the resume of a withdrawn pause) makes the withdrawal fail
with that fact's own code: withdraw the later one first.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.app._subscription_write import Context, Subscription, record
from tally.core.subscriptions import TimelineEntry, Withdrawn


def withdraw_scheduled_change(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, subscription_id: uuid.UUID, sequence: int
) -> Subscription:
    """Withdraw the fact numbered `sequence` on the subscription's timeline, at the customer's now."""

    def decide(context: Context) -> list[TimelineEntry]:
        return [Withdrawn(effective_at=context.now, withdraws=sequence)]

    return record(engine, clock, tenant_id, subscription_id, decide)
