"""Catalog prices → subscription items, for one customer at one moment.

Reads the prices (and a plan version's list of them) from the catalog, applies the customer's
negotiated override in force at the moment (a fixed fee's amount comes from it), checks the
currency against the customer's, and maps each price with `tally.core.subscriptions.catalog_items`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from tally.adapters.postgres import subscriptions as store
from tally.core.rating import Price, price_from_document
from tally.core.rejections import Rejected
from tally.core.subscriptions import ItemKind, SubscriptionItem
from tally.core.subscriptions.catalog_items import item_id, subscription_item

Connection = psycopg.Connection[Any]

PUBLISHED = "published"


@dataclass(frozen=True, slots=True)
class PriceChoice:
    """One catalog price to hold; `quantity` None: the plan's default, else 1 (fixed fees only)."""

    price_id: uuid.UUID
    quantity: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanChoice:
    """A plan version by id, or a plan by code with a version number (None: the latest published).
    `quantities` sets seats of the version's fixed fees, by catalog price id."""

    plan_version_id: uuid.UUID | None = None
    plan_code: str | None = None
    version: int | None = None
    quantities: Mapping[uuid.UUID, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ResolvedItems:
    items: tuple[SubscriptionItem, ...]
    origins: dict[str, store.ItemOrigin]
    plan_version_id: uuid.UUID | None
    trial_days: int  # the plan version's default trial (0 for explicit prices)


def resolve_plan_version(connection: Connection, tenant_id: uuid.UUID, plan: PlanChoice) -> store.PlanVersionRow:
    if plan.plan_version_id is not None:
        version = store.plan_version(connection, tenant_id, plan.plan_version_id)
    elif plan.plan_code is not None:
        version = store.plan_version_by_code(connection, tenant_id, plan.plan_code, plan.version)
    else:
        raise Rejected.because("plan_version_required", "name a plan version or a plan", "plan_version")
    if version is None:
        raise Rejected.because("plan_version_not_found", "no such plan version", "plan_version")
    if version.status != PUBLISHED:
        raise Rejected.because(
            "plan_version_not_published",
            f"version {version.version} of plan {version.plan_code} is a draft: publish it first",
            "plan_version",
        )
    return version


def resolve_items(
    connection: Connection,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    customer_currency: str | None,
    at: datetime,
    *,
    plan: PlanChoice | None,
    prices: Sequence[PriceChoice],
    carried_quantities: Mapping[str, int] | None = None,
) -> ResolvedItems:
    """The items for a plan version or an explicit list of prices (exactly one of them).

    `carried_quantities` (price code → quantity) keeps the seats a customer already has when a plan
    changes: a fixed fee of the new version with the same price code keeps the old quantity unless
    one is given."""
    if (plan is None) == (not prices):
        raise Rejected.because("items_or_plan_required", "give a plan version or a list of prices, not both", "items")
    if customer_currency is None:
        raise Rejected.because(
            "customer_currency_required", "set the customer's currency before subscribing it", "customer"
        )
    plan_version_id: uuid.UUID | None = None
    trial_days = 0
    if plan is not None:
        version = resolve_plan_version(connection, tenant_id, plan)
        plan_version_id, trial_days = version.id, version.trial_days
        in_version = {price_id for price_id, _ in version.items}
        for price_id in plan.quantities:
            if price_id not in in_version:
                raise Rejected.because(
                    "price_not_in_plan_version", f"price {price_id} is not in this plan version", "quantities"
                )
        choices = [PriceChoice(price_id, plan.quantities.get(price_id, default)) for price_id, default in version.items]
        explicit = set(plan.quantities)
    else:
        choices = list(prices)
        explicit = {choice.price_id for choice in choices if choice.quantity is not None}
    rows = store.catalog_prices(connection, tenant_id, [choice.price_id for choice in choices])
    units = store.custom_units(connection, tenant_id)
    items: list[SubscriptionItem] = []
    origins: dict[str, store.ItemOrigin] = {}
    for index, choice in enumerate(choices):
        where = f"items[{index}]"
        row = rows.get(choice.price_id)
        if row is None:
            raise Rejected.because("price_not_found", f"no such price {choice.price_id}", f"{where}.price")
        if plan is None and row.archived_at is not None:
            raise Rejected.because("price_archived", f"price {row.code} is archived", f"{where}.price")
        if row.currency != customer_currency:
            raise Rejected.because(
                "price_currency_must_match_customer",
                f"price {row.code} is in {row.currency}, the customer pays in {customer_currency}",
                f"{where}.price",
            )
        price: Price = price_from_document(row.document, units)
        override = store.override_at(connection, tenant_id, customer_id, row.id, at)
        override_id: uuid.UUID | None = None
        if override is not None:
            overridden = price_from_document(override.document, units)
            if overridden.meter is None:
                # A fixed fee's amount is the override's; usage overrides apply when usage is rated.
                price, override_id = overridden, override.id
        quantity = choice.quantity
        if price.meter is not None and choice.price_id not in explicit:
            quantity = None  # a plan's default quantity never applies to usage
        if (
            price.meter is None
            and choice.price_id not in explicit
            and carried_quantities is not None
            and row.code in carried_quantities
        ):
            quantity = carried_quantities[row.code]
        key = item_id(str(row.id), None if override_id is None else str(override_id))
        items.append(subscription_item(item_id=key, price=price, quantity=quantity, field=where))
        origins[key] = store.ItemOrigin(row.id, override_id, row.code)
    return ResolvedItems(tuple(items), origins, plan_version_id, trial_days)


def carried_quantities(items: Sequence[SubscriptionItem], origins: Mapping[str, store.ItemOrigin]) -> dict[str, int]:
    """Quantities of the fixed fees held, by price code (what a plan change keeps)."""
    return {
        origins[item.price_id].price_code: item.quantity
        for item in items
        if item.kind is ItemKind.FIXED and item.price_id in origins
    }
