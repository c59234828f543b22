"""Redeem a coupon for a customer (all its subscriptions) or one of its subscriptions.

Under the customer's invoicing lock: the coupon must not be archived, an amount-off coupon must be
in the customer's currency (`coupon_currency_must_match_invoice`), the subscription must be the
customer's, and a customer has at most `REDEMPTIONS_MAX` redemptions. The moment of redemption is
the customer's now (its test clock's time) unless given; a coupon's periods are the subscription's
billing periods, counted from the one that holds that moment (tally.core.invoicing.discounts).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id
from tally.adapters.postgres import invoicing_terms as store
from tally.adapters.postgres import subscriptions as subscription_store
from tally.app._invoicing import customer_unit
from tally.app._invoicing_terms import Locked, coupon_of, locked, mark_customer_due
from tally.core.invoicing import redeem
from tally.core.invoicing.context import REDEMPTIONS_MAX
from tally.core.rejections import Rejected


@dataclass(frozen=True, slots=True, kw_only=True)
class RedemptionInput:
    coupon_id: uuid.UUID
    customer_id: uuid.UUID
    subscription_id: uuid.UUID | None = None
    redeemed_at: datetime | None = None


def redeem_coupon(engine: Engine, clock: Clock, tenant_id: uuid.UUID, request: RedemptionInput) -> store.RedemptionRow:
    def act(here: Locked) -> store.RedemptionRow:
        connection = here.connection
        coupon_row = store.get_coupon(connection, tenant_id, request.coupon_id)
        if coupon_row is None:
            raise Rejected.because("coupon_not_found", "no such coupon", "coupon")
        if request.subscription_id is not None:
            subscription = subscription_store.get_subscription(connection, tenant_id, request.subscription_id)
            if subscription is None or subscription.customer_id != here.customer.id:
                raise Rejected.because("subscription_not_found", "no such subscription of the customer", "subscription")
        redeemed_at = request.redeemed_at or here.now
        if redeemed_at.tzinfo is None:
            raise Rejected.because("datetime_must_have_timezone", "redeemed_at needs a time zone", "redeemed_at")
        if coupon_row.archived_at is not None and coupon_row.archived_at <= redeemed_at:
            raise Rejected.because(
                "coupon_is_archived", "the coupon was archived; it is not redeemed any more", "coupon"
            )
        if here.customer.currency is None:
            raise Rejected.because("customer_currency_required", "the customer has no billing currency", "customer")
        currency = customer_unit(connection, tenant_id, here.customer.currency)
        coupon = coupon_of(coupon_row, here.unit)
        row = store.RedemptionRow(
            id=new_id(),
            tenant_id=tenant_id,
            coupon_id=coupon_row.id,
            customer_id=here.customer.id,
            subscription_id=request.subscription_id,
            redeemed_at=redeemed_at,
            recorded_at=here.now,
        )
        redeem(
            coupon,
            redemption_id=str(row.id),
            redeemed_at=redeemed_at,
            currency=currency,
            subscription_id=None if row.subscription_id is None else str(row.subscription_id),
        )
        if len(store.redemptions_of(connection, tenant_id, here.customer.id)) >= REDEMPTIONS_MAX:
            raise Rejected.because(
                "redemptions_exceed_limit", f"a customer has at most {REDEMPTIONS_MAX} redemptions", "customer"
            )
        store.insert_redemption(connection, row)
        mark_customer_due(connection, tenant_id, here.customer.id, here.now)
        return row

    return locked(engine, clock, tenant_id, request.customer_id, act)
