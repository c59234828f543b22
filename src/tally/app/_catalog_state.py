"""The stored catalog as the plain values `tally.core.catalog.diff` compares (gather for
`plan_catalog` and `apply_catalog`)."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from tally.adapters.pagination import LIMIT_MAX, PageRequest
from tally.adapters.postgres import catalog as store
from tally.adapters.postgres import meters as meter_store
from tally.app._catalog_write import stored_price
from tally.core.catalog.diff import CurrentCatalog, CurrentPlan
from tally.core.catalog.model import (
    FeatureKind,
    FeatureSpec,
    MeterSpec,
    PlanContent,
    PlanItem,
    PlanSpec,
    PriceSpec,
    ProductSpec,
)
from tally.core.rejections import InvariantViolation


def current_catalog(connection: psycopg.Connection[Any], tenant_id: uuid.UUID) -> CurrentCatalog:
    meters: dict[str, MeterSpec] = {}
    page = PageRequest(limit=LIMIT_MAX)
    while True:
        found = meter_store.list_meters(connection, tenant_id, page)
        for meter in found.items:
            version = meter_store.get_version(connection, tenant_id, meter.id, meter.latest_version)
            if version is None:
                raise InvariantViolation("a meter's latest version must exist")
            meters[meter.code] = MeterSpec(
                code=meter.code,
                name=meter.name,
                description=meter.description,
                metadata=dict(meter.metadata),
                definition=version.definition,
            )
        if not found.has_more or not found.items:
            break
        page = PageRequest(limit=LIMIT_MAX, starting_after=found.items[-1].id)
    units = store.custom_units(connection, tenant_id)
    products = {
        row.code: ProductSpec(code=row.code, name=row.name, description=row.description, metadata=row.metadata)
        for row in store.all_products(connection, tenant_id)
    }
    features = {
        row.code: FeatureSpec(code=row.code, name=row.name, kind=FeatureKind(row.kind), metadata=row.metadata)
        for row in store.all_features(connection, tenant_id)
    }
    active = store.active_prices(connection, tenant_id)
    prices = {
        row.code: PriceSpec(
            code=row.code, product=row.product_code, price=stored_price(row, units), metadata=row.metadata
        )
        for row in active
    }
    active_ids = {row.code: row.id for row in active}
    plans: dict[str, CurrentPlan] = {}
    for plan in store.all_plans(connection, tenant_id):
        content = PlanContent()
        stale: frozenset[str] = frozenset()
        if plan.published_version is not None:
            published = store.get_version(connection, tenant_id, plan.id, plan.published_version)
            if published is None:
                raise InvariantViolation("a plan's published version named on the plan must exist")
            content = PlanContent(
                items=tuple(PlanItem(price=item.price_code, quantity=item.quantity) for item in published.items),
                trial_days=published.trial_days,
                entitlements=published.entitlements,
            )
            stale = frozenset(
                item.price_code for item in published.items if active_ids.get(item.price_code) != item.price_id
            )
        plans[plan.code] = CurrentPlan(
            spec=PlanSpec(
                code=plan.code, name=plan.name, description=plan.description, metadata=plan.metadata, content=content
            ),
            published_version=plan.published_version,
            draft_version=plan.draft_version,
            latest_version=plan.latest_version,
            stale_prices=stale,
        )
    return CurrentCatalog(meters=meters, products=products, features=features, prices=prices, plans=plans)
