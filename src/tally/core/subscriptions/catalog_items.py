"""Catalog prices as subscription items: which prices a subscription can hold, and as what.

A subscription item (`SubscriptionItem`) is the minimal shape billing events need. A catalog price
(`tally.core.rating.Price`) maps to one as follows:

| price | item |
|---|---|
| metered (has a `meter`) | `usage`: rated in arrears by its price; no quantity |
| `flat_fee` | `fixed`: `unit_amount` = the fee, × `quantity` (default 1) |
| `per_unit`, no meter (seats) | `fixed`: `unit_amount` = the unit price, × `quantity` (default 1) |

Fixed fees are billed in advance (the subscription core's cadence for them), whatever the price's
`billing_timing` says; fixed fees billed in arrears are not supported yet.

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

from tally.core.rating.models import FlatFee, PerUnit, Price
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
    # Fixed fees are billed in advance by the subscription core. A seat price the catalog leaves at
    # its default timing (in arrears for per-unit) is still a seat fee: it is billed in advance here.
    unit_amount: Decimal | None
    match price.model:
        case FlatFee(amount=amount):
            unit_amount = amount
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
        )
    raise Rejected.because(
        "price_not_subscribable",
        f"a subscription holds metered prices and flat or per-unit fees, not an unmetered {price.kind} price",
        f"{field}.price",
    )
