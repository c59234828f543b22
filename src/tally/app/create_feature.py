"""Create a feature plans can grant: a boolean flag or a numeric limit. Its code is unique per tenant
(`feature_code_taken`); its kind never changes. Entitlement checks are a later module's."""

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
from tally.app._catalog_write import FEATURES_PER_TENANT_MAX, check_room
from tally.core.catalog.model import FeatureKind, FeatureSpec
from tally.core.rejections import InvariantViolation, Rejected

Feature = store.FeatureRow


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureInput:
    code: str
    kind: str  # boolean | limit
    name: str | None = None  # default: the code
    metadata: Mapping[str, str] = field(default_factory=dict)


def create_feature(engine: Engine, clock: Clock, tenant_id: uuid.UUID, feature: FeatureInput) -> Feature:
    if feature.kind not in tuple(FeatureKind):
        raise Rejected.because("feature_kind_unknown", "kind is boolean or limit", "kind")
    spec = FeatureSpec(
        code=feature.code, name=feature.name or feature.code, kind=FeatureKind(feature.kind), metadata=feature.metadata
    )

    def work(connection: psycopg.Connection[Any]) -> Feature:
        check_room(connection, tenant_id, "features", FEATURES_PER_TENANT_MAX)
        if not store.insert_labeled(connection, spec, row_id=new_id(), tenant_id=tenant_id, now=clock.now()):
            raise Rejected.because("feature_code_taken", f"a feature {spec.code!r} exists", "code")
        row = store.get_feature(connection, tenant_id, spec.code)
        if row is None:
            raise InvariantViolation("the feature just inserted must read back")
        return row

    return run_in_transaction(engine, work)
