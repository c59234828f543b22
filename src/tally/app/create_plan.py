"""Create a plan: a code and labels, no version yet. Its content goes into versions
(`create_plan_version`, then `publish_plan_version`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id
from tally.adapters.postgres import catalog as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app._catalog_write import PLANS_PER_TENANT_MAX, check_room
from tally.core.catalog.model import PlanSpec
from tally.core.rejections import InvariantViolation, Rejected

Plan = store.PlanRow


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanInput:
    code: str
    name: str | None = None  # default: the code
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


def create_plan(engine: Engine, clock: Clock, tenant_id: uuid.UUID, plan: PlanInput) -> Plan:
    spec = PlanSpec(code=plan.code, name=plan.name or plan.code, description=plan.description, metadata=plan.metadata)

    def work(connection: psycopg.Connection[Any]) -> Plan:
        check_room(connection, tenant_id, "plans", PLANS_PER_TENANT_MAX)
        if not store.insert_labeled(connection, spec, row_id=new_id(), tenant_id=tenant_id, now=clock.now()):
            raise Rejected.because("plan_code_taken", f"a plan {spec.code!r} exists", "code")
        row = store.get_plan(connection, tenant_id, spec.code)
        if row is None:
            raise InvariantViolation("the plan just inserted must read back")
        return row

    return run_in_transaction(engine, work)
