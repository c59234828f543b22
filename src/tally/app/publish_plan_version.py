"""Publish a draft plan version: from now on it never changes (the database refuses any edit), so
subscriptions can rely on it forever. Its prices must still be active. Publishing a published
version is `plan_version_immutable`.

Moving subscriptions from one version to another is an explicit operation the subscription module
provides (`tally.core.catalog.model.PlanMigration` / `SubscriptionMigrator`); publishing moves no one.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import PRICE, format_id
from tally.adapters.postgres import catalog as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app._catalog_write import check_content_by_id
from tally.app.create_plan_version import PlanVersion, locked_plan
from tally.app.update_plan_version import editable_version
from tally.core.catalog.model import PlanContent, PlanItem
from tally.core.rejections import InvariantViolation


def publish_plan_version(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, plan_code: str, number: int
) -> PlanVersion:
    def work(connection: psycopg.Connection[Any]) -> PlanVersion:
        plan = locked_plan(connection, tenant_id, plan_code)
        version = editable_version(connection, tenant_id, plan, number)
        # The rules again: a price may have been archived, or a feature changed, since the last edit.
        check_content_by_id(
            connection,
            tenant_id,
            PlanContent(
                items=tuple(
                    PlanItem(price=format_id(PRICE, item.price_id), quantity=item.quantity) for item in version.items
                ),
                trial_days=version.trial_days,
                entitlements=version.entitlements,
            ),
        )
        store.publish_version(connection, version.id, clock.now())
        published = store.get_version(connection, tenant_id, plan.id, number)
        if published is None:
            raise InvariantViolation("the plan version just published must read back")
        return published

    return run_in_transaction(engine, work)
