"""Read coupons, redemptions, credit grants (with what is left of each, from the ledger),
commitments, price caps and tax rates, one or a page at a time. Another tenant's is not found."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine

from tally.adapters.pagination import Page, PageRequest
from tally.adapters.postgres import invoicing_terms as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.core.rejections import Rejected

T = TypeVar("T")

_GETTERS: dict[str, Callable[[Any, uuid.UUID, uuid.UUID], Any]] = {
    "coupon": store.get_coupon,
    "coupon_redemption": store.get_redemption,
    "credit_grant": store.get_grant,
    "commitment": store.get_commitment,
    "price_cap": store.get_price_cap,
    "tax_rate": store.get_tax_rate,
}


def get_term(engine: Engine, tenant_id: uuid.UUID, term: str, term_id: uuid.UUID, expected: type[T]) -> T:
    """One term of the tenant, or `<term>_not_found`."""
    with psycopg_transaction(engine) as connection:
        found = _GETTERS[term](connection, tenant_id, term_id)
    if found is None:
        raise Rejected.because(f"{term}_not_found", f"no such {term.replace('_', ' ')}", "id")
    if not isinstance(found, expected):  # pragma: no cover - the table names the type
        raise TypeError(f"{term} is a {type(found).__name__}")
    return found


def list_terms(
    engine: Engine, tenant_id: uuid.UUID, term: str, page: PageRequest, *, customer_id: uuid.UUID | None = None
) -> Page[Any]:
    """Newest first; every kind but coupons can be filtered to one customer."""
    with psycopg_transaction(engine) as connection:
        match term:
            case "coupon":
                return store.list_coupons(connection, tenant_id, page)
            case "coupon_redemption":
                return store.list_redemptions(connection, tenant_id, page, customer_id=customer_id)
            case "credit_grant":
                return store.list_grants(connection, tenant_id, page, customer_id=customer_id)
            case "commitment":
                return store.list_commitments(connection, tenant_id, page, customer_id=customer_id)
            case "price_cap":
                return store.list_price_caps(connection, tenant_id, page, customer_id=customer_id)
            case "tax_rate":
                return store.list_tax_rates(connection, tenant_id, page, customer_id=customer_id)
            case _:  # pragma: no cover - the router names only these
                raise ValueError(term)
