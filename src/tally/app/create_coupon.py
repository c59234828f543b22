"""Create a coupon: percent or amount off, for once, N periods or forever, optionally limited to
plans (by code) or catalog prices. A coupon is a frozen fact: it is never edited, only archived
(no new redemptions). Its code names it in discount lines and must be unique in the tenant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id
from tally.adapters.postgres import catalog as catalog_store
from tally.adapters.postgres import invoicing_terms as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app._invoicing import customer_unit
from tally.app._invoicing_terms import Connection, coupon_of
from tally.core.invoicing import CouponDuration, DurationKind
from tally.core.invoicing.lines import check_identifier
from tally.core.rejections import Rejected

RESTRICTIONS_MAX = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class CouponInput:
    code: str
    duration: str
    duration_periods: int | None = None
    percent_off: Decimal | None = None
    amount_off_minor: int | None = None
    currency: str | None = None
    plan_codes: tuple[str, ...] = ()
    price_ids: tuple[uuid.UUID, ...] = field(default_factory=tuple)


def create_coupon(engine: Engine, clock: Clock, tenant_id: uuid.UUID, coupon: CouponInput) -> store.CouponRow:
    if len(coupon.plan_codes) + len(coupon.price_ids) > RESTRICTIONS_MAX:
        raise Rejected.because(
            "coupon_restrictions_exceed_limit", f"at most {RESTRICTIONS_MAX} plans and prices", "prices"
        )

    check_identifier(coupon.code, "coupon_code_invalid", "code")
    if coupon.duration not in DurationKind.__members__.values():
        raise Rejected.because("duration_invalid", "duration is once, repeating or forever", "duration")
    CouponDuration(DurationKind(coupon.duration), coupon.duration_periods)

    def work(connection: Connection) -> store.CouponRow:
        for price_id in coupon.price_ids:
            if catalog_store.get_price(connection, tenant_id, price_id) is None:
                raise Rejected.because("price_not_found", "no such price", "prices")
        row = store.CouponRow(
            id=new_id(),
            tenant_id=tenant_id,
            code=coupon.code,
            percent_off=coupon.percent_off,
            amount_off_minor=coupon.amount_off_minor,
            currency=coupon.currency,
            duration=coupon.duration,
            duration_periods=coupon.duration_periods,
            plan_ids=sorted(set(coupon.plan_codes)),
            price_ids=sorted({str(price_id) for price_id in coupon.price_ids}),
            created_at=clock.now(),
            archived_at=None,
        )
        # The core checks the rest, in the order of its fields (one bad input, one code).
        coupon_of(row, lambda code: customer_unit(connection, tenant_id, code))
        if not store.insert_coupon(connection, row):
            raise Rejected.because("coupon_code_taken", f"a coupon is already called {coupon.code!r}", "code")
        return row

    return run_in_transaction(engine, work)
