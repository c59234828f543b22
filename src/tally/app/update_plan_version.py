"""Edit a draft plan version: the fields given replace the draft's. A published version never changes
(`plan_version_immutable`; the database refuses it too): make a new version instead."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import PRICE, format_id
from tally.adapters.postgres import catalog as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app._catalog_write import check_content_by_id, write_draft
from tally.app.create_plan_version import PlanVersion, locked_plan
from tally.core.catalog.model import PlanContent, PlanItem
from tally.core.rejections import InvariantViolation, Rejected


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanVersionUpdate:
    """None leaves a field as it is."""

    items: tuple[PlanItem, ...] | None = None
    trial_days: int | None = None
    entitlements: Mapping[str, bool | int] | None = None


def editable_version(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, plan: store.PlanRow, number: int
) -> store.PlanVersionRow:
    version = store.get_version(connection, tenant_id, plan.id, number, for_update=True)
    if version is None:
        raise Rejected.because("plan_version_not_found", f"plan {plan.code} has no version {number}", "version")
    if version.status != store.DRAFT:
        raise Rejected.because(
            "plan_version_immutable",
            f"version {number} of {plan.code} is published and never changes: create a new version",
            "version",
        )
    return version


def update_plan_version(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, plan_code: str, *, number: int, update: PlanVersionUpdate
) -> PlanVersion:
    def work(connection: psycopg.Connection[Any]) -> PlanVersion:
        plan = locked_plan(connection, tenant_id, plan_code)
        current = editable_version(connection, tenant_id, plan, number)
        content = PlanContent(
            items=update.items
            if update.items is not None
            else tuple(
                PlanItem(price=format_id(PRICE, item.price_id), quantity=item.quantity) for item in current.items
            ),
            trial_days=update.trial_days if update.trial_days is not None else current.trial_days,
            entitlements=update.entitlements if update.entitlements is not None else current.entitlements,
        )
        checked, rows = check_content_by_id(connection, tenant_id, content)
        write_draft(
            connection,
            tenant_id,
            plan,
            content=checked,
            price_ids={key: row.id for key, row in rows.items()},
            now=clock.now(),
        )
        updated = store.get_version(connection, tenant_id, plan.id, number)
        if updated is None:
            raise InvariantViolation("the plan version just updated must read back")
        return updated

    return run_in_transaction(engine, work)
