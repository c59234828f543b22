"""Catalog prices as subscription items: which prices a subscription can hold, and as what.

A subscription item (`SubscriptionItem`) is the minimal shape billing events need. A catalog price
(`tally.core.rating.Price`) maps to one as follows:

| price | item |
|---|---|
| metered (has a `meter`) | `usage`: rated in arrears by its price; no quantity |
| `flat_fee` | `fixed`: `unit_amount` = the fee, × `quantity` (default 1), billed at the price's `billing_timing` |
| `per_unit`, no meter (seats) | `fixed`: `unit_amount` = the unit price, × `quantity` (default 1), in advance |

A flat fee is billed in advance unless its price says `billing_timing: in_arrears`: then each
period is billed at its end, for the time the fee was held (see billing.py). A flat fee's timing is
always a choice, since its default is in advance. A per-unit seat price is billed in advance
whatever its `billing_timing`: the catalog's default for `per_unit` is in arrears (right for
metered usage) and is stored spelled out, so a seat price's stored timing cannot tell a choice from
the default, and seats have always been billed in advance here.

Anything else cannot be held by a subscription, with a stable code: a one-off price (no interval:
`price_must_be_recurring`), or a recurring price that is neither metered nor a flat or per-unit
fee (`price_not_subscribable`: a graduated seat price would need rating at the quantity, which
fixed fees here do not do). A quantity on a usage price is
`quantity_applies_to_fixed_fees`.

`item_id` is the item's identity in the timeline: the catalog price's id, or, when a negotiated
override sets the fee's amount, the price id and the override id together (a price id means one
amount throughout a timeline; an override is another amount, so another identity).
"""

from __future__ import annotations

from decimal import Decimal

from tally.core.rating.models import BillingTiming, FlatFee, PerUnit, Price
from tally.core.rejections import Rejected
from tally.core.subscriptions.timeline import ItemKind, SubscriptionItem


def item_id(price_id: str, override_id: str | None = None) -> str:
    """The item identity of a catalog price, with the override that sets its amount (if any)."""
    return price_id if override_id is None else f"{price_id}+{override_id}"


def subscription_item(*, item_id: str, price: Price, quantity: int | None, field: str = "items") -> SubscriptionItem:
    """The subscription item for `price` (see the table above). `quantity` None: the default (1)."""
    if price.interval is None:
        raise Rejected.because(
            "price_must_be_recurring", "a one-off price cannot be held by a subscription", f"{field}.price"
        )
    if price.meter is not None:
        if quantity is not None:
            raise Rejected.because(
                "quantity_applies_to_fixed_fees", "a usage price has no quantity", f"{field}.quantity"
            )
        return SubscriptionItem(price_id=item_id, kind=ItemKind.USAGE, interval=price.interval, currency=price.unit)
    # A seat price the catalog leaves at its default timing (in arrears for per-unit) is still a seat
    # fee billed in advance; a flat fee keeps its timing (see the table above).
    unit_amount: Decimal | None
    timing = BillingTiming.IN_ADVANCE
    match price.model:
        case FlatFee(amount=amount):
            unit_amount = amount
            timing = price.billing_timing or BillingTiming.IN_ADVANCE
        case PerUnit(unit_price=unit_price):
            unit_amount = unit_price
        case _:
            unit_amount = None
    if unit_amount is not None:
        return SubscriptionItem(
            price_id=item_id,
            kind=ItemKind.FIXED,
            interval=price.interval,
            currency=price.unit,
            unit_amount=unit_amount,
            quantity=1 if quantity is None else quantity,
            billing_timing=timing,
        )
    raise Rejected.because(
        "price_not_subscribable",
        f"a subscription holds metered prices and flat or per-unit fees, not an unmetered {price.kind} price",
        f"{field}.price",
    )
