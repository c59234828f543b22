"""Record a minimum commitment: at least `minimum_minor` of spend over a period, for a customer (or
one of its subscriptions), over every price or some catalog prices. When the period has ended, the
billing run bills the shortfall as a `minimum_commitment` true-up line. A commitment is a frozen
fact; a renewed contract is a new commitment for the next period.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id
from tally.adapters.postgres import catalog as catalog_store
from tally.adapters.postgres import invoicing_terms as store
from tally.adapters.postgres import subscriptions as subscription_store
from tally.app._invoicing import customer_unit
from tally.app._invoicing_terms import Locked, locked, mark_customer_due
from tally.core.invoicing import MinimumCommitment
from tally.core.invoicing.context import COMMITMENTS_MAX
from tally.core.periods import Period
from tally.core.rejections import Rejected

PRICES_MAX = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitmentInput:
    customer_id: uuid.UUID
    minimum_minor: int
    period_start: datetime
    period_end: datetime
    currency: str | None = None  # default: the customer's
    subscription_id: uuid.UUID | None = None
    price_ids: tuple[uuid.UUID, ...] = field(default_factory=tuple)


def create_commitment(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, request: CommitmentInput
) -> store.CommitmentRow:
    if len(request.price_ids) > PRICES_MAX:
        raise Rejected.because("commitment_prices_exceed_limit", f"at most {PRICES_MAX} prices", "prices")
    if request.period_start.tzinfo is None or request.period_end.tzinfo is None:
        raise Rejected.because("datetime_must_have_timezone", "the period needs a time zone", "period_start")
    if request.period_end <= request.period_start:
        raise Rejected.because("period_must_end_after_it_starts", "period_end is after period_start", "period_end")

    def act(here: Locked) -> store.CommitmentRow:
        connection = here.connection
        _check_subscription(here, request.subscription_id)
        for price_id in request.price_ids:
            if catalog_store.get_price(connection, tenant_id, price_id) is None:
                raise Rejected.because("price_not_found", "no such price", "prices")
        if here.customer.currency is None:
            raise Rejected.because("customer_currency_required", "the customer has no billing currency", "customer")
        currency = customer_unit(connection, tenant_id, request.currency or here.customer.currency)
        row = store.CommitmentRow(
            id=new_id(),
            tenant_id=tenant_id,
            customer_id=here.customer.id,
            subscription_id=request.subscription_id,
            currency=currency.code,
            minimum_minor=request.minimum_minor,
            period_start=request.period_start,
            period_end=request.period_end,
            price_ids=sorted({str(price_id) for price_id in request.price_ids}),
            recorded_at=here.now,
        )
        commitment = MinimumCommitment(
            commitment_id=str(row.id),
            period=Period(row.period_start, row.period_end),
            minimum_minor=row.minimum_minor,
            currency=currency,
            subscription_id=None if row.subscription_id is None else str(row.subscription_id),
            price_ids=frozenset(row.price_ids),
        )
        commitment.check_currency(customer_unit(connection, tenant_id, here.customer.currency))
        if len(store.commitments_of(connection, tenant_id, here.customer.id, currency.code)) >= COMMITMENTS_MAX:
            raise Rejected.because(
                "commitments_exceed_limit", f"a customer has at most {COMMITMENTS_MAX} commitments", "customer"
            )
        store.insert_commitment(connection, row)
        mark_customer_due(connection, tenant_id, here.customer.id, here.now)
        return row

    return locked(engine, clock, tenant_id, request.customer_id, act)


def _check_subscription(here: Locked, subscription_id: uuid.UUID | None) -> None:
    if subscription_id is None:
        return
    subscription = subscription_store.get_subscription(here.connection, here.tenant_id, subscription_id)
    if subscription is None or subscription.customer_id != here.customer.id:
        raise Rejected.because("subscription_not_found", "no such subscription of the customer", "subscription")
