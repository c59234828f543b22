"""Read the catalog: products, features, prices, plans and their versions, price overrides."""

from __future__ import annotations

import uuid

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


def get_product(engine: Engine, tenant_id: uuid.UUID, code: str) -> ProductRow:
    with psycopg_transaction(engine) as connection:
        row = store.get_product(connection, tenant_id, code)
    if row is None:
        raise Rejected.because("product_not_found", f"no product {code!r}", "product")
    return row


def list_products(engine: Engine, tenant_id: uuid.UUID, page: PageRequest) -> Page[ProductRow]:
    with psycopg_transaction(engine) as connection:
        return store.list_products(connection, tenant_id, page)


def get_feature(engine: Engine, tenant_id: uuid.UUID, code: str) -> FeatureRow:
    with psycopg_transaction(engine) as connection:
        row = store.get_feature(connection, tenant_id, code)
    if row is None:
        raise Rejected.because("feature_not_found", f"no feature {code!r}", "feature")
    return row


def list_features(engine: Engine, tenant_id: uuid.UUID, page: PageRequest) -> Page[FeatureRow]:
    with psycopg_transaction(engine) as connection:
        return store.list_features(connection, tenant_id, page)


def get_price(engine: Engine, tenant_id: uuid.UUID, price_id: uuid.UUID) -> PriceRow:
    with psycopg_transaction(engine) as connection:
        row = store.get_price(connection, tenant_id, price_id)
    if row is None:
        raise Rejected.because("price_not_found", "no such price", "price")
    return row


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
            found = store.get_product(connection, tenant_id, product)
            if found is None:
                raise Rejected.because("product_not_found", f"no product {product!r}", "product")
            product_id = found.id
        return store.list_prices(
            connection, tenant_id, page, product_id=product_id, code=code, include_archived=include_archived
        )


def get_plan(engine: Engine, tenant_id: uuid.UUID, code: str) -> PlanRow:
    with psycopg_transaction(engine) as connection:
        row = store.get_plan(connection, tenant_id, code)
    if row is None:
        raise Rejected.because("plan_not_found", f"no plan {code!r}", "plan")
    return row


def list_plans(engine: Engine, tenant_id: uuid.UUID, page: PageRequest) -> Page[PlanRow]:
    with psycopg_transaction(engine) as connection:
        return store.list_plans(connection, tenant_id, page)


def get_plan_version(engine: Engine, tenant_id: uuid.UUID, code: str, version: int) -> PlanVersionRow:
    with psycopg_transaction(engine) as connection:
        plan = store.get_plan(connection, tenant_id, code)
        if plan is None:
            raise Rejected.because("plan_not_found", f"no plan {code!r}", "plan")
        row = store.get_version(connection, tenant_id, plan.id, version)
    if row is None:
        raise Rejected.because("plan_version_not_found", f"plan {code} has no version {version}", "version")
    return row


def list_plan_versions(engine: Engine, tenant_id: uuid.UUID, code: str) -> list[PlanVersionRow]:
    """Every version of a plan, oldest first."""
    with psycopg_transaction(engine) as connection:
        plan = store.get_plan(connection, tenant_id, code)
        if plan is None:
            raise Rejected.because("plan_not_found", f"no plan {code!r}", "plan")
        return store.list_versions(connection, tenant_id, plan.id)


def get_override(engine: Engine, tenant_id: uuid.UUID, override_id: uuid.UUID) -> OverrideRow:
    with psycopg_transaction(engine) as connection:
        row = store.get_override(connection, tenant_id, override_id)
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
    with psycopg_transaction(engine) as connection:
        return store.list_overrides(connection, tenant_id, page, customer_id=customer_id, price_id=price_id)
