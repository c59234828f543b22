"""What the use cases on coupons, credit grants, commitments, caps and tax rates share.

    terms_of      a customer's terms read back as the core's objects, for the billing run's gather
    locked        one transaction under the customer's invoicing lock (the billing run's), with
                  the customer and its clock's now
    expire_due    post the expiry of every grant of a customer that has expired by its clock with
                  something left, then bring its draft in line (credits it counted on are gone)

Rows speak UUIDs; the core names a grant, a redemption and a commitment by the UUID's text, a coupon
by its code. A grant's ledger account is `customer_credit.grant_<uuid>`, so what is left of a grant
is a ledger balance, read with the grant.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import customers as customer_store
from tally.adapters.postgres import invoices as invoice_store
from tally.adapters.postgres import invoicing_terms as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app._invoicing import customer_unit, post_in
from tally.app.customer_clock import clock_for_customer
from tally.app.event_store import EventStore
from tally.core import money
from tally.core.invoicing import (
    Coupon,
    CouponDuration,
    CreditGrant,
    GrantBalance,
    GrantKind,
    GrantScope,
    MinimumCommitment,
    PriceCap,
    PriceRef,
    Redemption,
    ScopeKind,
    credits_expired,
)
from tally.core.invoicing.credits import GRANTS_MAX, CreditExpiry
from tally.core.periods import Period
from tally.core.rejections import Rejected

Connection = psycopg.Connection[Any]
T = TypeVar("T")

logger = logging.getLogger(__name__)


# ----- rows as the core's objects ---------------------------------------------------------------------


def coupon_of(row: store.CouponRow, unit: Callable[[str], money.Unit]) -> Coupon:
    return Coupon(
        coupon_id=row.code,
        duration=CouponDuration(row.duration, row.duration_periods),  # type: ignore[arg-type]
        percent_off=row.percent_off,
        amount_off_minor=row.amount_off_minor,
        currency=None if row.currency is None else unit(row.currency),
        plan_ids=frozenset(row.plan_ids),
        price_ids=frozenset(row.price_ids),
    )


def grant_of(row: store.GrantRow, unit: Callable[[str], money.Unit]) -> CreditGrant:
    scope = row.scope
    return CreditGrant(
        grant_id=str(row.id),
        kind=GrantKind(row.kind),
        unit=unit(row.unit),
        amount_minor=row.amount_minor,
        effective_at=row.effective_at,
        expires_at=row.expires_at,
        priority=row.priority,
        scope=GrantScope(ScopeKind(scope["kind"]), frozenset(scope.get("ids", []))),
        value_per_unit=row.value_per_unit,
        value_currency=None if row.value_currency is None else unit(row.value_currency),
    )


def usable_grant_of(row: store.GrantRow, unit: Callable[[str], money.Unit]) -> CreditGrant | None:
    """The grant as the billing run uses it: an early end moves its expiry forward; a grant ended
    before it took effect is never usable (None)."""
    grant = grant_of(row, unit)
    if row.ended_at is None or (row.expires_at is not None and row.expires_at <= row.ended_at):
        return grant
    if row.ended_at <= row.effective_at:
        return None
    return CreditGrant(
        grant_id=grant.grant_id,
        kind=grant.kind,
        unit=grant.unit,
        amount_minor=grant.amount_minor,
        effective_at=grant.effective_at,
        expires_at=row.ended_at,
        priority=grant.priority,
        scope=grant.scope,
        value_per_unit=grant.value_per_unit,
        value_currency=grant.value_currency,
    )


@dataclass(frozen=True, slots=True)
class Terms:
    redemptions: tuple[Redemption, ...]
    grants: tuple[GrantBalance, ...]
    commitments: tuple[MinimumCommitment, ...]
    caps: tuple[PriceCap, ...]


def _billing_ids(catalog_ids: Sequence[str], prices: Sequence[PriceRef]) -> frozenset[str]:
    """The billing price ids (subscription items) of the given catalog prices. A catalog id no item
    uses is kept as it is: it matches nothing, so a scoped term never widens to every price."""
    found = {ref.price_id for ref in prices if ref.catalog_price_id in catalog_ids}
    return frozenset(found | set(catalog_ids))


def terms_of(
    connection: Connection,
    tenant_id: uuid.UUID,
    customer: customer_store.CustomerRow,
    currency: money.Unit,
    prices: Sequence[PriceRef],
) -> Terms:
    """Every redemption, the grants with something left (their balance from the ledger), the
    commitments in the customer's currency and the caps, as the core reads them."""

    def unit(code: str) -> money.Unit:
        return customer_unit(connection, tenant_id, code)

    redemption_rows = store.redemptions_of(connection, tenant_id, customer.id)
    coupons = store.coupons_by_id(connection, tenant_id, [row.coupon_id for row in redemption_rows])
    redemptions = tuple(
        Redemption(
            redemption_id=str(row.id),
            coupon=coupon_of(coupons[row.coupon_id], unit),
            redeemed_at=row.redeemed_at,
            subscription_id=None if row.subscription_id is None else str(row.subscription_id),
        )
        for row in redemption_rows
    )
    grants: list[GrantBalance] = []
    for row in store.grants_with_balance(connection, tenant_id, customer.id, GRANTS_MAX):
        grant = usable_grant_of(row, unit)
        if grant is not None and grant.money == currency:
            grants.append(GrantBalance(grant=grant, remaining_minor=row.remaining_minor))
    commitments = tuple(
        MinimumCommitment(
            commitment_id=str(row.id),
            period=Period(row.period_start, row.period_end),
            minimum_minor=row.minimum_minor,
            currency=currency,
            subscription_id=None if row.subscription_id is None else str(row.subscription_id),
            price_ids=_billing_ids(row.price_ids, prices) if row.price_ids else frozenset(),
        )
        for row in store.commitments_of(connection, tenant_id, customer.id, currency.code)
    )
    caps: list[PriceCap] = []
    for cap in store.price_caps_of(connection, tenant_id, customer.id):
        for price_id in sorted(_billing_ids([str(cap.price_id)], prices)):
            caps.append(
                PriceCap(
                    price_id=price_id,
                    maximum_amount=cap.maximum_amount,
                    subscription_id=None if cap.subscription_id is None else str(cap.subscription_id),
                )
            )
    return Terms(redemptions, tuple(grants), commitments, tuple(caps))


# ----- one customer, under its lock -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Locked:
    engine: Engine
    connection: Connection
    clock: Clock
    tenant_id: uuid.UUID
    customer: customer_store.CustomerRow
    now: datetime

    def unit(self, code: str) -> money.Unit:
        return customer_unit(self.connection, self.tenant_id, code)


def locked(engine: Engine, clock: Clock, tenant_id: uuid.UUID, customer_id: uuid.UUID, act: Callable[[Locked], T]) -> T:
    """Run `act` in one transaction under the customer's invoicing lock (what the billing run and the
    invoice lifecycle take), with the customer's now (its test clock's time, or the system's)."""

    def work(connection: Connection) -> T:
        customer = customer_store.get_customer(connection, tenant_id, customer_id)
        if customer is None:
            raise Rejected.because("customer_not_found", "no such customer", "customer")
        invoice_store.lock_customer(connection, tenant_id, customer_id)
        now = clock_for_customer(connection, tenant_id, customer_id, system=clock).now()
        return act(Locked(engine, connection, clock, tenant_id, customer, now))

    return run_in_transaction(engine, work)


def mark_customer_due(connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID, at: datetime) -> None:
    """Make the next scheduled billing run look at the customer (a new term can change its draft)."""
    connection.execute(
        """UPDATE customer_billing SET next_run_at = least(coalesce(next_run_at, %s), %s)
           WHERE tenant_id = %s AND customer_id = %s""",
        (at, at, tenant_id, customer_id),
    )


def grant_reference(grant_id: uuid.UUID) -> str:
    return f"credit_grant:{grant_id}"


def expire_due(
    here: Locked, refresh: Callable[[Connection, uuid.UUID, uuid.UUID, datetime], object] | None
) -> list[CreditExpiry]:
    """Post `credits_expired` for every grant of the customer expired by its now with something left,
    keyed `credit_grant:<id>:expired:<n>` (n: expiries posted before, as a voided invoice can give
    credits back to an expired grant). Then `refresh` the customer's draft, which no longer counts on
    them; a refusal there leaves the draft as it was (finalizing it is then refused by the ledger's
    floor on the grant, and the next billing run refreshes it)."""
    expiries: list[CreditExpiry] = []
    connection = here.connection
    for row in store.grants_with_balance(connection, here.tenant_id, here.customer.id, GRANTS_MAX):
        expires_at = row.expires_effectively_at
        if expires_at is None or expires_at > here.now:
            continue
        grant = grant_of(row, here.unit)
        expiry = CreditExpiry(
            grant=grant,
            expired_at=expires_at,
            units_minor=row.remaining_minor,
            money_minor=grant.money_value(row.remaining_minor),
        )
        reference = grant_reference(row.id)
        sequence = store.expiries_posted(connection, here.tenant_id, reference)
        post_in(
            here.engine,
            connection,
            here.clock,
            here.tenant_id,
            [credits_expired(here.customer.external_id, expiry)],
            key_prefix=f"{reference}:expired:{sequence}",
            effective_at=min(expires_at, here.now),
            reference=reference,
        )
        expiries.append(expiry)
    if expiries and refresh is not None and here.customer.currency is not None:
        drafts = [
            invoice_store.draft_of(connection, here.tenant_id, here.customer.id, here.customer.currency, billing_reason)
            for billing_reason in ("period", "late_usage")
        ]
        if any(draft is not None for draft in drafts):
            try:
                with connection.transaction():
                    refresh(connection, here.tenant_id, here.customer.id, here.now)
            except Rejected as rejected:
                logger.warning(
                    "draft not refreshed after credits expired",
                    extra={"customer_id": str(here.customer.id), "code": rejected.rejection.code},
                )
    return expiries


def event_store_refresh(
    event_store: EventStore, engine: Engine, clock: Clock
) -> Callable[[Connection, uuid.UUID, uuid.UUID, datetime], object]:
    """The billing run's own refresh of one customer's drafts, with this event store."""
    from tally.app._invoicing import bill_locked

    def refresh(connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID, through: datetime) -> object:
        return bill_locked(connection, event_store, tenant_id, customer_id, through, engine=engine, clock=clock)

    return refresh
