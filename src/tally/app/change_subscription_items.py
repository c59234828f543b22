"""Change what a subscription holds: another plan version (upgrade, downgrade, migration) or another
list of prices — now with proration, at the end of the current term, or at a future moment (a phase).

The new items are resolved at the moment the change takes effect (overrides in force then apply).
Seats carry over: a fixed fee of the new items with the same price code as one held before the
change keeps its quantity unless a quantity is given. The core records an `ItemsChanged`; with
`prorate` (default) an immediate change credits the unused part of fees already billed for the
period and charges the new ones for the rest of it. A change at period end makes no proration.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import customers as customer_store
from tally.app._subscription_items import PlanChoice, PriceChoice, carried_quantities, resolve_items
from tally.app._subscription_write import Context, Effective, RecordedEntry, Subscription, When, origins_of, record
from tally.core.rejections import Rejected
from tally.core.subscriptions import ItemsChanged, SubscriptionStatus, state_at


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemsChange:
    plan: PlanChoice | None = None
    prices: Sequence[PriceChoice] = ()
    effective: Effective = When.NOW
    prorate: bool = True


def change_subscription_items(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    subscription_id: uuid.UUID,
    change: ItemsChange,
    *,
    guard: Callable[[Context], None] | None = None,
) -> Subscription:
    """`guard` (for bulk callers such as a plan migration) may reject the change after the lock is held."""

    def decide(context: Context) -> list[RecordedEntry]:
        if guard is not None:
            guard(context)
        at = context.resolve(change.effective)
        customer = customer_store.get_customer(context.connection, tenant_id, context.row.customer_id)
        if customer is None:  # pragma: no cover - a foreign key keeps the customer
            raise Rejected.because("customer_not_found", "no such customer", "customer")
        held = state_at(context.timeline, at)
        if held.status is SubscriptionStatus.ENDED:
            raise Rejected.because("change_dated_after_end", "the subscription has ended by then", "effective_at")
        resolved = resolve_items(
            context.connection,
            tenant_id,
            customer.id,
            customer.currency,
            at,
            plan=change.plan,
            prices=change.prices,
            carried_quantities=carried_quantities(held.items, origins_of(context.entries)),
        )
        entry = ItemsChanged(effective_at=at, items=resolved.items, prorate=change.prorate)
        return [RecordedEntry(0, entry, context.now, resolved.plan_version_id, resolved.origins)]

    return record(engine, clock, tenant_id, subscription_id, decide)
