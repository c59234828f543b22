"""`tally catalog apply`: make the stored catalog declare what the files declare — atomically and
idempotently.

One database transaction, under the tenant's catalog lock:
gather: the stored catalog; decide: `read_catalog`, `diff_catalog` (the same plan `plan_catalog`
shows); apply: each change in the plan's order (meters, products, features, prices, plans,
archivals), then the plan is computed again and must be empty — anything else is a bug and rolls
everything back. Any rejection or error rolls back the whole apply: a failing apply changes nothing,
and applying the same files again changes nothing. The per-tenant limits of the API's create use
cases hold here too (`products_exceed_limit`, …).

Meters go through the meter use cases (`create_meter_in`, `update_meter_in`): a changed definition
is a new meter version, backfilled by the worker like any other.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id
from tally.adapters.postgres import catalog as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app import _catalog_write as limits
from tally.app._catalog_state import current_catalog
from tally.app._catalog_write import check_room, insert_price, write_draft
from tally.app.create_meter import MeterInput, create_meter_in
from tally.app.update_meter import MeterUpdate, update_meter_in
from tally.core.catalog.diff import Action, CatalogPlan, Change, diff_catalog
from tally.core.catalog.files import Catalog, CatalogSource, read_catalog
from tally.core.metering.meters import DEFINITION_FIELDS, MeterDefinitionInput
from tally.core.rejections import InvariantViolation, require


@dataclass(frozen=True, slots=True)
class AppliedCatalog:
    plan: CatalogPlan  # what was done; empty when the store already matched the files


def apply_catalog(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, sources: Sequence[CatalogSource]
) -> AppliedCatalog:
    def work(connection: psycopg.Connection[Any]) -> AppliedCatalog:
        store.lock_catalog(connection, tenant_id)
        desired = read_catalog(sources, store.custom_units(connection, tenant_id))
        plan = diff_catalog(desired, current_catalog(connection, tenant_id))
        for change in plan.changes:
            _apply(connection, clock, tenant_id, desired=desired, plan=plan, change=change)
        after = diff_catalog(desired, current_catalog(connection, tenant_id))
        require(after.empty, f"catalog apply left differences: {[change.document() for change in after.changes]}")
        return AppliedCatalog(plan)

    return run_in_transaction(engine, work)


def _apply(
    connection: psycopg.Connection[Any],
    clock: Clock,
    tenant_id: uuid.UUID,
    *,
    desired: Catalog,
    plan: CatalogPlan,
    change: Change,
) -> None:
    now = clock.now()
    code = change.code
    match change.section, change.action:
        case "meters", Action.CREATE:
            meter = desired.meters[code]
            create_meter_in(
                connection,
                clock,
                tenant_id,
                MeterInput(
                    code=code,
                    name=meter.name,
                    description=meter.description,
                    metadata=meter.metadata,
                    definition=MeterDefinitionInput.of(meter.definition),
                ),
            )
        case "meters", Action.UPDATE:
            meter = desired.meters[code]
            update_meter_in(
                connection,
                clock,
                tenant_id,
                code,
                MeterUpdate(name=meter.name, description=meter.description, metadata=meter.metadata),
            )
        case "meters", Action.NEW_VERSION:
            definition = MeterDefinitionInput.of(desired.meters[code].definition)
            update_meter_in(
                connection,
                clock,
                tenant_id,
                code,
                MeterUpdate(definition={name: getattr(definition, name) for name in DEFINITION_FIELDS}),
            )
        case ("products" | "features" | "plans") as section, Action.CREATE:
            check_room(connection, tenant_id, section, _per_tenant_max(section))
            store.insert_labeled(
                connection, _labeled(desired, section, code), row_id=new_id(), tenant_id=tenant_id, now=now
            )
        case ("products" | "features" | "plans") as section, Action.UPDATE:
            store.relabel(connection, tenant_id, _labeled(desired, section, code), now)
        case "prices", Action.CREATE | Action.REPLACE:
            price = desired.prices[code]
            if change.action is Action.REPLACE:
                _archive(connection, tenant_id, code, now)
            product_row = store.get_product(connection, tenant_id, price.product)
            if product_row is None:
                raise InvariantViolation("the plan checked that a price's product exists (created before prices)")
            insert_price(
                connection,
                tenant_id,
                code=code,
                product_id=product_row.id,
                price=price.price,
                metadata=price.metadata,
                now=now,
            )
        case "prices", Action.UPDATE:
            active = store.get_active_price(connection, tenant_id, code)
            if active is None:
                raise InvariantViolation("the plan only updates an active price")
            store.update_price_metadata(connection, active.id, desired.prices[code].metadata)
        case "prices", Action.ARCHIVE:
            _archive(connection, tenant_id, code, now)
        case "plans", Action.NEW_VERSION:
            plan_row = store.get_plan(connection, tenant_id, code, for_update=True)
            if plan_row is None:
                raise InvariantViolation("the plan only versions a plan that exists (created before versions)")
            content = plan.plan_contents[code]
            price_ids = {}
            for item in content.items:
                active = store.get_active_price(connection, tenant_id, item.price)
                if active is None:
                    raise InvariantViolation("the plan checked that every plan item's price is active")
                price_ids[item.price] = active.id
            number = write_draft(connection, tenant_id, plan_row, content=content, price_ids=price_ids, now=now)
            require(number == change.version, f"plan {code}: made version {number}, planned {change.version}")
            version = store.get_version(connection, tenant_id, plan_row.id, number)
            if version is None:
                raise InvariantViolation("the plan version just written must read back")
            store.publish_version(connection, version.id, now)
        case _:  # pragma: no cover - the diff makes no other change
            raise ValueError(f"no way to apply {change}")


def _labeled(desired: Catalog, section: str, code: str) -> store.LabeledSpec:
    """The declared product, feature or plan: the diff created or relabels them alike."""
    match section:
        case "products":
            return desired.products[code]
        case "features":
            return desired.features[code]
        case _:
            return desired.plans[code]


def _per_tenant_max(section: str) -> int:
    # Read when called, from the module the API's use cases read them from (tests lower them there).
    match section:
        case "products":
            return limits.PRODUCTS_PER_TENANT_MAX
        case "features":
            return limits.FEATURES_PER_TENANT_MAX
        case _:
            return limits.PLANS_PER_TENANT_MAX


def _archive(connection: psycopg.Connection[Any], tenant_id: uuid.UUID, code: str, now: Any) -> None:
    active = store.get_active_price(connection, tenant_id, code)
    if active is None:
        raise InvariantViolation("the plan only archives or replaces an active price")
    store.archive_price(connection, active.id, now)
