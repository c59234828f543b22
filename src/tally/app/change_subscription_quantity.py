"""Change the quantity (seats) of one fixed fee of a subscription: now with proration, at the end of
the current term, or at a given moment. The fee is named by its catalog price id; the item held at
the moment of the change with that price is the one changed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.app._subscription_write import Context, Effective, Subscription, When, origins_of, record
from tally.core.rejections import Rejected
from tally.core.subscriptions import QuantityChanged, TimelineEntry, state_at


@dataclass(frozen=True, slots=True, kw_only=True)
class QuantityChange:
    price_id: uuid.UUID
    quantity: int
    effective: Effective = When.NOW
    prorate: bool = True


def change_subscription_quantity(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, subscription_id: uuid.UUID, change: QuantityChange
) -> Subscription:
    def decide(context: Context) -> list[TimelineEntry]:
        at = context.resolve(change.effective)
        origins = origins_of(context.entries)
        held = [
            item for item in state_at(context.timeline, at).items if origins[item.price_id].price_id == change.price_id
        ]
        if not held:
            raise Rejected.because(
                "price_not_in_subscription", "the subscription does not hold this price then", "price"
            )
        return [
            QuantityChanged(
                effective_at=at, price_id=held[0].price_id, quantity=change.quantity, prorate=change.prorate
            )
        ]

    return record(engine, clock, tenant_id, subscription_id, decide)
