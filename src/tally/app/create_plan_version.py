"""Create a plan's draft version: the next number, with prices (by id), a trial and entitlements.

A plan has at most one draft (`plan_draft_version_exists`: edit that one). Every price must be the
tenant's and active; the content rules (one currency, quantities only on fixed fees, entitlements
matching their features' kinds) are `tally.core.catalog.model.check_plan_content`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import catalog as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app._catalog_write import check_content_by_id, write_draft
from tally.core.catalog.model import PlanContent, PlanItem
from tally.core.rejections import InvariantViolation, Rejected

PlanVersion = store.PlanVersionRow


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanVersionInput:
    items: tuple[PlanItem, ...] = ()  # prices by wire id (price_…)
    trial_days: int = 0
    entitlements: Mapping[str, bool | int] = field(default_factory=dict)

    def content(self) -> PlanContent:
        return PlanContent(items=self.items, trial_days=self.trial_days, entitlements=dict(self.entitlements))


def locked_plan(connection: psycopg.Connection[Any], tenant_id: uuid.UUID, code: str) -> store.PlanRow:
    plan = store.get_plan(connection, tenant_id, code, for_update=True)
    if plan is None:
        raise Rejected.because("plan_not_found", f"no plan {code!r}", "plan")
    return plan


def create_plan_version(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, plan_code: str, version: PlanVersionInput
) -> PlanVersion:
    def work(connection: psycopg.Connection[Any]) -> PlanVersion:
        plan = locked_plan(connection, tenant_id, plan_code)
        if plan.draft_version is not None:
            raise Rejected.because(
                "plan_draft_version_exists", f"version {plan.draft_version} is the plan's draft: edit it", "plan"
            )
        content, rows = check_content_by_id(connection, tenant_id, version.content())
        number = write_draft(
            connection,
            tenant_id,
            plan,
            content=content,
            price_ids={key: row.id for key, row in rows.items()},
            now=clock.now(),
        )
        created = store.get_version(connection, tenant_id, plan.id, number)
        if created is None:
            raise InvariantViolation("the plan version just inserted must read back")
        return created

    return run_in_transaction(engine, work)
