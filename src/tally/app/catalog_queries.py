"""Read the catalog: products, features, prices, plans and their versions, price overrides."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine

from tally.adapters.pagination import Page, PageRequest
from tally.adapters.postgres import catalog as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.core.rejections import Rejected

ProductRow = store.ProductRow
FeatureRow = store.FeatureRow
PriceRow = store.PriceRow
PlanRow = store.PlanRow
PlanVersionRow = store.PlanVersionRow
OverrideRow = store.OverrideRow

T = TypeVar("T")


def _read(engine: Engine, query: Callable[[store.Connection], T]) -> T:
    with psycopg_transaction(engine) as connection:
        return query(connection)


def _found(row: T | None, kind: str, detail: str) -> T:
    """`row`, or the rejection `<kind>_not_found` when there is none."""
    if row is None:
        raise Rejected.because(f"{kind}_not_found", detail, kind)
    return row


def get_product(engine: Engine, tenant_id: uuid.UUID, code: str) -> ProductRow:
    row = _read(engine, lambda connection: store.get_product(connection, tenant_id, code))
    return _found(row, "product", f"no product {code!r}")


def list_products(engine: Engine, tenant_id: uuid.UUID, page: PageRequest) -> Page[ProductRow]:
    return _read(engine, lambda connection: store.list_products(connection, tenant_id, page))


def get_feature(engine: Engine, tenant_id: uuid.UUID, code: str) -> FeatureRow:
    row = _read(engine, lambda connection: store.get_feature(connection, tenant_id, code))
    return _found(row, "feature", f"no feature {code!r}")


def list_features(engine: Engine, tenant_id: uuid.UUID, page: PageRequest) -> Page[FeatureRow]:
    return _read(engine, lambda connection: store.list_features(connection, tenant_id, page))


def get_price(engine: Engine, tenant_id: uuid.UUID, price_id: uuid.UUID) -> PriceRow:
    row = _read(engine, lambda connection: store.get_price(connection, tenant_id, price_id))
    return _found(row, "price", "no such price")


def list_prices(
    engine: Engine,
    tenant_id: uuid.UUID,
    page: PageRequest,
    *,
    product: str | None = None,
    code: str | None = None,
    include_archived: bool = False,
) -> Page[PriceRow]:
    with psycopg_transaction(engine) as connection:
        product_id = None
        if product is not None:
            found = _found(store.get_product(connection, tenant_id, product), "product", f"no product {product!r}")
            product_id = found.id
        return store.list_prices(
            connection, tenant_id, page, product_id=product_id, code=code, include_archived=include_archived
        )


def get_plan(engine: Engine, tenant_id: uuid.UUID, code: str) -> PlanRow:
    return _read(engine, lambda connection: _plan(connection, tenant_id, code))


def _plan(connection: store.Connection, tenant_id: uuid.UUID, code: str) -> PlanRow:
    return _found(store.get_plan(connection, tenant_id, code), "plan", f"no plan {code!r}")


def list_plans(engine: Engine, tenant_id: uuid.UUID, page: PageRequest) -> Page[PlanRow]:
    return _read(engine, lambda connection: store.list_plans(connection, tenant_id, page))


def get_plan_version(engine: Engine, tenant_id: uuid.UUID, code: str, version: int) -> PlanVersionRow:
    row = _read(
        engine,
        lambda connection: store.get_version(connection, tenant_id, _plan(connection, tenant_id, code).id, version),
    )
    if row is None:
        raise Rejected.because("plan_version_not_found", f"plan {code} has no version {version}", "version")
    return row


def list_plan_versions(engine: Engine, tenant_id: uuid.UUID, code: str) -> list[PlanVersionRow]:
    """Every version of a plan, oldest first."""
    return _read(
        engine, lambda connection: store.list_versions(connection, tenant_id, _plan(connection, tenant_id, code).id)
    )


def get_override(engine: Engine, tenant_id: uuid.UUID, override_id: uuid.UUID) -> OverrideRow:
    row = _read(engine, lambda connection: store.get_override(connection, tenant_id, override_id))
    if row is None:
        raise Rejected.because("price_override_not_found", "no such price override", "override")
    return row


def list_overrides(
    engine: Engine,
    tenant_id: uuid.UUID,
    page: PageRequest,
    *,
    customer_id: uuid.UUID | None = None,
    price_id: uuid.UUID | None = None,
) -> Page[OverrideRow]:
    return _read(
        engine,
        lambda connection: store.list_overrides(
            connection, tenant_id, page, customer_id=customer_id, price_id=price_id
        ),
    )
