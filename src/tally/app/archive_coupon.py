"""Archive a coupon: no redemption after this moment. Existing redemptions keep their discounts
(a discount already given is never taken back by archiving). Archiving twice is refused."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import invoicing_terms as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app._invoicing_terms import Connection
from tally.core.rejections import Rejected


def archive_coupon(engine: Engine, clock: Clock, tenant_id: uuid.UUID, coupon_id: uuid.UUID) -> store.CouponRow:
    def work(connection: Connection) -> store.CouponRow:
        if store.get_coupon(connection, tenant_id, coupon_id) is None:
            raise Rejected.because("coupon_not_found", "no such coupon", "id")
        now = clock.now()
        if not store.end_term(connection, tenant_id, "coupon", coupon_id, ended_at=now, now=now):
            raise Rejected.because("coupon_is_archived", "the coupon is archived already", "id")
        row = store.get_coupon(connection, tenant_id, coupon_id)
        if row is None:  # pragma: no cover - coupons are never deleted
            raise RuntimeError("coupon vanished")
        return row

    return run_in_transaction(engine, work)
