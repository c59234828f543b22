"""Catalog writes inside a caller's transaction, shared by the API use cases and `catalog apply`.

Each function checks what only the database knows (existence, uniqueness, limits) and writes; the
rules about the values themselves are in tally.core.catalog and tally.core.rating.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg

from tally.adapters.ids import PRICE, format_id, new_id
from tally.adapters.postgres import catalog as store
from tally.core import money
from tally.core.catalog.model import FeatureKind, PlanContent, check_plan_content
from tally.core.rating import Price, price_from_document
from tally.core.rejections import InvariantViolation, Rejected

Connection = psycopg.Connection[Any]

PRODUCTS_PER_TENANT_MAX = 1_000
FEATURES_PER_TENANT_MAX = 1_000
PRICES_PER_TENANT_MAX = 100_000
PLANS_PER_TENANT_MAX = 1_000
VERSIONS_PER_PLAN_MAX = 1_000


def check_room(connection: Connection, tenant_id: uuid.UUID, table: str, limit: int) -> None:
    if store.count(connection, table, tenant_id) >= limit:
        raise Rejected.because(f"{table}_exceed_limit", f"a tenant has at most {limit} {table}")


def stored_price(row: store.PriceRow, units: Mapping[str, money.Unit]) -> Price:
    """A stored price back as the core's value (it was validated when stored)."""
    return price_from_document(row.document, units)


def price_units(connection: Connection, tenant_id: uuid.UUID, codes: Sequence[str]) -> dict[str, money.Unit]:
    if all(code in money.ISO_4217_MINOR_UNITS for code in codes):
        return {}
    return store.custom_units(connection, tenant_id)


def insert_price(
    connection: Connection,
    tenant_id: uuid.UUID,
    *,
    code: str,
    product_id: uuid.UUID,
    price: Price,
    metadata: Mapping[str, str],
    now: datetime,
) -> store.PriceRow:
    """A new active price. The meter of a usage price must exist (`meter_must_exist`)."""
    if price.meter is not None and not store.meter_exists(connection, tenant_id, price.meter):
        raise Rejected.because("meter_must_exist", f"no meter {price.meter!r} for this tenant", "price.meter")
    check_room(connection, tenant_id, "prices", PRICES_PER_TENANT_MAX)
    price_id = new_id()
    if not store.insert_price(
        connection,
        price_id=price_id,
        tenant_id=tenant_id,
        code=code,
        product_id=product_id,
        currency=price.unit.code,
        meter_code=price.meter,
        document=price.document(),
        metadata=metadata,
        now=now,
    ):
        existing = store.get_active_price(connection, tenant_id, code)
        holder = format_id(PRICE, existing.id) if existing else "another price"
        raise Rejected.because(
            "price_code_taken", f"{holder} is the active price {code!r}: archive it first, or use another code", "code"
        )
    row = store.get_price(connection, tenant_id, price_id)
    if row is None:
        raise InvariantViolation("the price just inserted must read back")
    return row


def feature_kinds(connection: Connection, tenant_id: uuid.UUID) -> dict[str, FeatureKind]:
    # Held until the plan version is written: a feature it grants cannot be deleted meanwhile.
    return {row.code: FeatureKind(row.kind) for row in store.all_features(connection, tenant_id, for_share=True)}


def check_content_by_id(
    connection: Connection, tenant_id: uuid.UUID, content: PlanContent
) -> tuple[PlanContent, dict[str, store.PriceRow]]:
    """A version's content whose items name prices by wire id (`price_…`), checked: every price is
    the tenant's and active. Answers the normalized content and the rows by wire id."""
    from tally.adapters.ids import parse_id

    ids: dict[str, uuid.UUID] = {}
    for index, item in enumerate(content.items):
        parsed = parse_id(PRICE, item.price)
        if parsed is None:
            raise Rejected.because("price_must_exist", f"no price {item.price[:60]!r}", f"items[{index}].price")
        ids[item.price] = parsed
    rows = store.get_prices(connection, tenant_id, list(ids.values()))
    by_reference: dict[str, store.PriceRow] = {}
    for index, item in enumerate(content.items):
        row = rows.get(ids[item.price])
        if row is None:
            raise Rejected.because("price_must_exist", f"no price {item.price!r}", f"items[{index}].price")
        if row.archived_at is not None:
            raise Rejected.because(
                "price_must_not_be_archived", f"{item.price} is archived: use its replacement", f"items[{index}].price"
            )
        by_reference[item.price] = row
    units = price_units(connection, tenant_id, [row.currency for row in by_reference.values()])
    prices = {reference: stored_price(row, units) for reference, row in by_reference.items()}
    return check_plan_content(content, prices, feature_kinds(connection, tenant_id)), by_reference


def write_draft(
    connection: Connection,
    tenant_id: uuid.UUID,
    plan: store.PlanRow,
    *,
    content: PlanContent,
    price_ids: Mapping[str, uuid.UUID],
    now: datetime,
) -> int:
    """Fill the plan's draft (made when there is none) with checked content; answers its number."""
    if plan.draft_version is not None:
        version = store.get_version(connection, tenant_id, plan.id, plan.draft_version, for_update=True)
        if version is None:
            raise InvariantViolation("a plan's draft version named on the plan must exist")
        store.update_version(
            connection, version.id, trial_days=content.trial_days, entitlements=content.entitlements, now=now
        )
        version_id, number = version.id, version.version
    else:
        if plan.latest_version >= VERSIONS_PER_PLAN_MAX:
            raise Rejected.because("plan_versions_exceed_limit", f"a plan has at most {VERSIONS_PER_PLAN_MAX} versions")
        version_id, number = new_id(), plan.latest_version + 1
        store.insert_version(
            connection,
            version_id=version_id,
            tenant_id=tenant_id,
            plan_id=plan.id,
            version=number,
            trial_days=content.trial_days,
            entitlements=content.entitlements,
            now=now,
        )
    store.replace_items(
        connection, tenant_id, version_id, [(price_ids[item.price], item.quantity) for item in content.items]
    )
    return number
