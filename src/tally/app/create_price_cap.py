"""Record a cap on a usage price for a customer (or one of its subscriptions): at most
`maximum_amount` (major units of the price's currency) per billing period, on top of the price's own
maximum (the lower wins). Usage over the cap shows as a negative `usage_cap` line. A cap is a frozen
fact, applied to every period the billing run recomputes from then on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id
from tally.adapters.postgres import catalog as catalog_store
from tally.adapters.postgres import invoicing_terms as store
from tally.app._invoicing_terms import Locked, locked, mark_customer_due
from tally.app.create_commitment import _check_subscription
from tally.core.invoicing import PriceCap
from tally.core.invoicing.context import CAPS_MAX
from tally.core.rejections import Rejected


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceCapInput:
    customer_id: uuid.UUID
    price_id: uuid.UUID
    maximum_amount: Decimal
    subscription_id: uuid.UUID | None = None


def create_price_cap(engine: Engine, clock: Clock, tenant_id: uuid.UUID, request: PriceCapInput) -> store.PriceCapRow:
    def act(here: Locked) -> store.PriceCapRow:
        connection = here.connection
        _check_subscription(here, request.subscription_id)
        price = catalog_store.get_price(connection, tenant_id, request.price_id)
        if price is None:
            raise Rejected.because("price_not_found", "no such price", "price")
        if price.meter_code is None:
            raise Rejected.because("price_must_be_metered", "only a usage price is capped", "price")
        cap = PriceCap(price_id=str(price.id), maximum_amount=request.maximum_amount)
        if len(store.price_caps_of(connection, tenant_id, here.customer.id)) >= CAPS_MAX:
            raise Rejected.because("caps_exceed_limit", f"a customer has at most {CAPS_MAX} caps", "customer")
        row = store.PriceCapRow(
            id=new_id(),
            tenant_id=tenant_id,
            customer_id=here.customer.id,
            subscription_id=request.subscription_id,
            price_id=price.id,
            currency=price.currency,
            maximum_amount=cap.maximum_amount,
            recorded_at=here.now,
        )
        store.insert_price_cap(connection, row)
        mark_customer_due(connection, tenant_id, here.customer.id, here.now)
        return row

    return locked(engine, clock, tenant_id, request.customer_id, act)
