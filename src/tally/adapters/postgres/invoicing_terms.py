"""The terms the invoicing core reads besides subscriptions and usage (migrations 0010 and 0012):
coupons and their redemptions, credit grants, minimum commitments, price caps, tax rates, and the
end of a coupon, a tax rate or a grant.

Every table here is append-only (the database refuses updates and deletes): a term is recorded once
and ended by a row in `invoicing_term_ends`, never edited. What is left of a credit grant is not
stored here: it is the balance of the grant's own ledger account (`grant_account_code`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from tally.adapters.pagination import Page, PageRequest

Connection = psycopg.Connection[Any]
RowT = TypeVar("RowT")

GRANT_ACCOUNT_PREFIX = "customer_credit.grant_"


def grant_account_code(grant_id: uuid.UUID) -> str:
    """The ledger account holding what is left of a grant (the core names grants by this UUID text)."""
    return f"{GRANT_ACCOUNT_PREFIX}{grant_id}"


def _page(  # noqa: PLR0917 - a private helper of this module's list queries
    connection: Connection,
    select: str,
    filters: list[str],
    parameters: dict[str, Any],
    page: PageRequest,
    make: Callable[..., RowT],
    id_column: str = "id",
) -> Page[RowT]:
    """Newest first (ids are UUIDv7), keyset on the id."""
    parameters = {**parameters, "limit": page.limit + 1}
    if page.starting_after is not None:
        filters = [*filters, f"{id_column} < %(starting_after)s"]
        parameters["starting_after"] = page.starting_after
    if page.ending_before is not None:
        filters = [*filters, f"{id_column} > %(ending_before)s"]
        parameters["ending_before"] = page.ending_before
    order = "ASC" if page.backwards else "DESC"
    rows = connection.execute(
        f"{select} WHERE {' AND '.join(filters)} ORDER BY {id_column} {order} LIMIT %(limit)s", parameters
    ).fetchall()
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    if page.backwards:
        rows.reverse()
    return Page(items=[make(*row) for row in rows], has_more=has_more, backwards=page.backwards)


# ----- ends -------------------------------------------------------------------------------------------


def end_term(
    connection: Connection, tenant_id: uuid.UUID, term: str, term_id: uuid.UUID, *, ended_at: datetime, now: datetime
) -> bool:
    """Record the end of a term; False when it had ended already (the first end stands)."""
    row = connection.execute(
        """INSERT INTO invoicing_term_ends (tenant_id, term, term_id, ended_at, recorded_at)
           VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING term_id""",
        (tenant_id, term, term_id, ended_at, now),
    ).fetchone()
    return row is not None


_ENDED = """(SELECT e.ended_at FROM invoicing_term_ends e
             WHERE e.tenant_id = {table}.tenant_id AND e.term = '{term}' AND e.term_id = {table}.id)"""


# ----- coupons ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CouponRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    code: str
    percent_off: Decimal | None
    amount_off_minor: int | None
    currency: str | None
    duration: str
    duration_periods: int | None
    plan_ids: list[str]
    price_ids: list[str]
    created_at: datetime
    archived_at: datetime | None


_COUPON_SELECT = f"""SELECT id, tenant_id, code, percent_off, amount_off_minor, currency, duration, duration_periods,
    plan_ids, price_ids, created_at, {_ENDED.format(table="coupons", term="coupon")} FROM coupons"""


def insert_coupon(connection: Connection, row: CouponRow) -> bool:
    """False when the tenant has a coupon with this code already."""
    inserted = connection.execute(
        """INSERT INTO coupons (id, tenant_id, code, percent_off, amount_off_minor, currency, duration,
               duration_periods, plan_ids, price_ids, created_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (tenant_id, code) DO NOTHING
           RETURNING id""",
        (
            row.id,
            row.tenant_id,
            row.code,
            row.percent_off,
            row.amount_off_minor,
            row.currency,
            row.duration,
            row.duration_periods,
            Jsonb(row.plan_ids),
            Jsonb(row.price_ids),
            row.created_at,
        ),
    ).fetchone()
    return inserted is not None


def get_coupon(connection: Connection, tenant_id: uuid.UUID, coupon_id: uuid.UUID) -> CouponRow | None:
    row = connection.execute(f"{_COUPON_SELECT} WHERE tenant_id = %s AND id = %s", (tenant_id, coupon_id)).fetchone()
    return CouponRow(*row) if row else None


def get_coupon_by_code(connection: Connection, tenant_id: uuid.UUID, code: str) -> CouponRow | None:
    row = connection.execute(f"{_COUPON_SELECT} WHERE tenant_id = %s AND code = %s", (tenant_id, code)).fetchone()
    return CouponRow(*row) if row else None


def list_coupons(connection: Connection, tenant_id: uuid.UUID, page: PageRequest) -> Page[CouponRow]:
    return _page(connection, _COUPON_SELECT, ["tenant_id = %(tenant_id)s"], {"tenant_id": tenant_id}, page, CouponRow)


# ----- redemptions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RedemptionRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    coupon_id: uuid.UUID
    customer_id: uuid.UUID
    subscription_id: uuid.UUID | None
    redeemed_at: datetime
    recorded_at: datetime


_REDEMPTION_SELECT = """SELECT id, tenant_id, coupon_id, customer_id, subscription_id, redeemed_at, recorded_at
    FROM coupon_redemptions"""


def insert_redemption(connection: Connection, row: RedemptionRow) -> None:
    connection.execute(
        """INSERT INTO coupon_redemptions (id, tenant_id, coupon_id, customer_id, subscription_id, redeemed_at,
               recorded_at) VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (row.id, row.tenant_id, row.coupon_id, row.customer_id, row.subscription_id, row.redeemed_at, row.recorded_at),
    )


def get_redemption(connection: Connection, tenant_id: uuid.UUID, redemption_id: uuid.UUID) -> RedemptionRow | None:
    row = connection.execute(
        f"{_REDEMPTION_SELECT} WHERE tenant_id = %s AND id = %s", (tenant_id, redemption_id)
    ).fetchone()
    return RedemptionRow(*row) if row else None


def list_redemptions(
    connection: Connection, tenant_id: uuid.UUID, page: PageRequest, *, customer_id: uuid.UUID | None = None
) -> Page[RedemptionRow]:
    filters = ["tenant_id = %(tenant_id)s"]
    parameters: dict[str, Any] = {"tenant_id": tenant_id}
    if customer_id is not None:
        filters.append("customer_id = %(customer_id)s")
        parameters["customer_id"] = customer_id
    return _page(connection, _REDEMPTION_SELECT, filters, parameters, page, RedemptionRow)


def redemptions_of(connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> list[RedemptionRow]:
    rows = connection.execute(
        f"{_REDEMPTION_SELECT} WHERE tenant_id = %s AND customer_id = %s ORDER BY id", (tenant_id, customer_id)
    ).fetchall()
    return [RedemptionRow(*row) for row in rows]


def coupons_by_id(connection: Connection, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, CouponRow]:
    rows = connection.execute(
        f"{_COUPON_SELECT} WHERE tenant_id = %s AND id = ANY(%s)", (tenant_id, list(ids))
    ).fetchall()
    return {row[0]: CouponRow(*row) for row in rows}


# ----- credit grants ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GrantRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    customer_id: uuid.UUID
    kind: str
    unit: str
    amount_minor: int
    value_per_unit: Decimal | None
    value_currency: str | None
    effective_at: datetime
    expires_at: datetime | None
    priority: int
    scope: dict[str, Any]
    recorded_at: datetime
    ledger_transaction_id: uuid.UUID | None
    ended_at: datetime | None  # expired early
    remaining_minor: int  # the balance of the grant's ledger account

    @property
    def expires_effectively_at(self) -> datetime | None:
        """The earlier of its expiry and an early end."""
        ends = [moment for moment in (self.expires_at, self.ended_at) if moment is not None]
        return min(ends) if ends else None


_GRANT_SELECT = f"""SELECT g.id, g.tenant_id, g.customer_id, g.kind, g.unit, g.amount_minor, g.value_per_unit,
    g.value_currency, g.effective_at, g.expires_at, g.priority, g.scope, g.recorded_at, g.ledger_transaction_id,
    {_ENDED.format(table="g", term="credit_grant")} AS ended_at,
    coalesce((SELECT a.credits_posted - a.debits_posted FROM ledger_accounts a JOIN customers c
              ON c.tenant_id = g.tenant_id AND c.id = g.customer_id
              WHERE a.tenant_id = g.tenant_id AND a.code = '{GRANT_ACCOUNT_PREFIX}' || g.id::text
                AND a.unit_code = g.unit AND a.customer_id = c.external_id), 0) AS remaining_minor
    FROM credit_grants g"""


def insert_grant(connection: Connection, row: GrantRow) -> None:
    connection.execute(
        """INSERT INTO credit_grants (id, tenant_id, customer_id, kind, unit, amount_minor, value_per_unit,
               value_currency, effective_at, expires_at, priority, scope, recorded_at, ledger_transaction_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            row.id,
            row.tenant_id,
            row.customer_id,
            row.kind,
            row.unit,
            row.amount_minor,
            row.value_per_unit,
            row.value_currency,
            row.effective_at,
            row.expires_at,
            row.priority,
            Jsonb(row.scope),
            row.recorded_at,
            row.ledger_transaction_id,
        ),
    )


def get_grant(connection: Connection, tenant_id: uuid.UUID, grant_id: uuid.UUID) -> GrantRow | None:
    row = connection.execute(f"{_GRANT_SELECT} WHERE g.tenant_id = %s AND g.id = %s", (tenant_id, grant_id)).fetchone()
    return GrantRow(*row) if row else None


def list_grants(
    connection: Connection, tenant_id: uuid.UUID, page: PageRequest, *, customer_id: uuid.UUID | None = None
) -> Page[GrantRow]:
    filters = ["g.tenant_id = %(tenant_id)s"]
    parameters: dict[str, Any] = {"tenant_id": tenant_id}
    if customer_id is not None:
        filters.append("g.customer_id = %(customer_id)s")
        parameters["customer_id"] = customer_id
    return _page(connection, _GRANT_SELECT, filters, parameters, page, GrantRow, id_column="g.id")


def grants_with_balance(
    connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID, limit: int
) -> list[GrantRow]:
    """The customer's grants with something left, oldest first (at most `limit`)."""
    rows = connection.execute(
        f"SELECT * FROM ({_GRANT_SELECT} WHERE g.tenant_id = %s AND g.customer_id = %s) AS found "
        "WHERE found.remaining_minor > 0 ORDER BY found.id LIMIT %s",
        (tenant_id, customer_id, limit),
    ).fetchall()
    return [GrantRow(*row) for row in rows]


def customers_with_expired_grants(
    connection: Connection, tenant_id: uuid.UUID | None, now: datetime, limit: int
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(tenant, customer) pairs holding a grant expired by their clock with something left."""
    rows = connection.execute(
        f"""SELECT DISTINCT found.tenant_id, found.customer_id FROM ({_GRANT_SELECT}) AS found
            JOIN customers c ON c.tenant_id = found.tenant_id AND c.id = found.customer_id
            LEFT JOIN test_clocks t ON t.id = c.test_clock_id
            WHERE (%(tenant_id)s::uuid IS NULL OR found.tenant_id = %(tenant_id)s)
              AND found.remaining_minor > 0
              AND least(found.expires_at, found.ended_at) <= coalesce(t.frozen_time, %(now)s)
            ORDER BY 1, 2 LIMIT %(limit)s""",
        {"tenant_id": tenant_id, "now": now, "limit": limit},
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


def expiries_posted(connection: Connection, tenant_id: uuid.UUID, reference: str) -> int:
    """How many expiry transactions a grant has (a voided invoice can give credits back to it later)."""
    row = connection.execute(
        """SELECT count(*) FROM ledger_transactions
           WHERE tenant_id = %s AND reference = %s AND template = 'credits_expired'""",
        (tenant_id, reference),
    ).fetchone()
    return int(row[0]) if row else 0


# ----- commitments and caps ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommitmentRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    customer_id: uuid.UUID
    subscription_id: uuid.UUID | None
    currency: str
    minimum_minor: int
    period_start: datetime
    period_end: datetime
    price_ids: list[str]
    recorded_at: datetime


_COMMITMENT_SELECT = """SELECT id, tenant_id, customer_id, subscription_id, currency, minimum_minor, period_start,
    period_end, price_ids, recorded_at FROM commitments"""


def insert_commitment(connection: Connection, row: CommitmentRow) -> None:
    connection.execute(
        """INSERT INTO commitments (id, tenant_id, customer_id, subscription_id, currency, minimum_minor,
               period_start, period_end, price_ids, recorded_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            row.id,
            row.tenant_id,
            row.customer_id,
            row.subscription_id,
            row.currency,
            row.minimum_minor,
            row.period_start,
            row.period_end,
            Jsonb(row.price_ids),
            row.recorded_at,
        ),
    )


def get_commitment(connection: Connection, tenant_id: uuid.UUID, commitment_id: uuid.UUID) -> CommitmentRow | None:
    row = connection.execute(
        f"{_COMMITMENT_SELECT} WHERE tenant_id = %s AND id = %s", (tenant_id, commitment_id)
    ).fetchone()
    return CommitmentRow(*row) if row else None


def list_commitments(
    connection: Connection, tenant_id: uuid.UUID, page: PageRequest, *, customer_id: uuid.UUID | None = None
) -> Page[CommitmentRow]:
    filters = ["tenant_id = %(tenant_id)s"]
    parameters: dict[str, Any] = {"tenant_id": tenant_id}
    if customer_id is not None:
        filters.append("customer_id = %(customer_id)s")
        parameters["customer_id"] = customer_id
    return _page(connection, _COMMITMENT_SELECT, filters, parameters, page, CommitmentRow)


def commitments_of(
    connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID, currency: str
) -> list[CommitmentRow]:
    rows = connection.execute(
        f"{_COMMITMENT_SELECT} WHERE tenant_id = %s AND customer_id = %s AND currency = %s ORDER BY id",
        (tenant_id, customer_id, currency),
    ).fetchall()
    return [CommitmentRow(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class PriceCapRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    customer_id: uuid.UUID
    subscription_id: uuid.UUID | None
    price_id: uuid.UUID
    currency: str
    maximum_amount: Decimal
    recorded_at: datetime


_CAP_SELECT = """SELECT id, tenant_id, customer_id, subscription_id, price_id, currency, maximum_amount, recorded_at
    FROM price_caps"""


def insert_price_cap(connection: Connection, row: PriceCapRow) -> None:
    connection.execute(
        """INSERT INTO price_caps (id, tenant_id, customer_id, subscription_id, price_id, currency, maximum_amount,
               recorded_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            row.id,
            row.tenant_id,
            row.customer_id,
            row.subscription_id,
            row.price_id,
            row.currency,
            row.maximum_amount,
            row.recorded_at,
        ),
    )


def get_price_cap(connection: Connection, tenant_id: uuid.UUID, cap_id: uuid.UUID) -> PriceCapRow | None:
    row = connection.execute(f"{_CAP_SELECT} WHERE tenant_id = %s AND id = %s", (tenant_id, cap_id)).fetchone()
    return PriceCapRow(*row) if row else None


def list_price_caps(
    connection: Connection, tenant_id: uuid.UUID, page: PageRequest, *, customer_id: uuid.UUID | None = None
) -> Page[PriceCapRow]:
    filters = ["tenant_id = %(tenant_id)s"]
    parameters: dict[str, Any] = {"tenant_id": tenant_id}
    if customer_id is not None:
        filters.append("customer_id = %(customer_id)s")
        parameters["customer_id"] = customer_id
    return _page(connection, _CAP_SELECT, filters, parameters, page, PriceCapRow)


def price_caps_of(connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID) -> list[PriceCapRow]:
    rows = connection.execute(
        f"{_CAP_SELECT} WHERE tenant_id = %s AND customer_id = %s ORDER BY id", (tenant_id, customer_id)
    ).fetchall()
    return [PriceCapRow(*row) for row in rows]


# ----- tax rates --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaxRateRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    customer_id: uuid.UUID | None
    product: str | None
    name: str
    jurisdiction: str
    percent: Decimal
    recorded_at: datetime
    ended_at: datetime | None


_TAX_SELECT = f"""SELECT id, tenant_id, customer_id, product, name, jurisdiction, percent, recorded_at,
    {_ENDED.format(table="tax_rates", term="tax_rate")} FROM tax_rates"""


def insert_tax_rate(connection: Connection, row: TaxRateRow) -> None:
    connection.execute(
        """INSERT INTO tax_rates (id, tenant_id, customer_id, product, name, jurisdiction, percent, recorded_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
        (row.id, row.tenant_id, row.customer_id, row.product, row.name, row.jurisdiction, row.percent, row.recorded_at),
    )


def get_tax_rate(connection: Connection, tenant_id: uuid.UUID, rate_id: uuid.UUID) -> TaxRateRow | None:
    row = connection.execute(f"{_TAX_SELECT} WHERE tenant_id = %s AND id = %s", (tenant_id, rate_id)).fetchone()
    return TaxRateRow(*row) if row else None


def list_tax_rates(
    connection: Connection, tenant_id: uuid.UUID, page: PageRequest, *, customer_id: uuid.UUID | None = None
) -> Page[TaxRateRow]:
    filters = ["tenant_id = %(tenant_id)s"]
    parameters: dict[str, Any] = {"tenant_id": tenant_id}
    if customer_id is not None:
        filters.append("customer_id = %(customer_id)s")
        parameters["customer_id"] = customer_id
    return _page(connection, _TAX_SELECT, filters, parameters, page, TaxRateRow)


def tax_rates_in_force(
    connection: Connection, tenant_id: uuid.UUID, customer_id: uuid.UUID, at: datetime
) -> list[TaxRateRow]:
    """The customer's own rates in force at `at`, or else the tenant's defaults in force then."""
    rows = connection.execute(
        f"{_TAX_SELECT} WHERE tenant_id = %s AND (customer_id = %s OR customer_id IS NULL) ORDER BY id",
        (tenant_id, customer_id),
    ).fetchall()
    found = [TaxRateRow(*row) for row in rows]
    live = [rate for rate in found if rate.ended_at is None or rate.ended_at > at]
    own = [rate for rate in live if rate.customer_id is not None]
    return own or live
