"""Change the labels of a product, a feature or a plan: its name, description and metadata.

Labels are what people read; nothing billed depends on them, so they change in place (the row's
`updated_at` moves). What billing depends on never changes here: codes (`field_immutable`, checked
at the API edge), a feature's kind, a plan's versions (new versions, through the plans API) and a
price's terms (a new price). Fields left `None` keep their value; metadata is replaced whole, as
sent. Sending the current values changes nothing, not even `updated_at`. Features have no
description (`feature_description_not_supported`). The core's rules for labels apply
(`<kind>_name_invalid`, `<kind>_description_too_long`, `metadata_…`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, overload

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import catalog as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.core.catalog.model import FeatureKind, FeatureSpec, PlanSpec, ProductSpec, check_labels
from tally.core.rejections import Rejected


class Labeled(StrEnum):
    PRODUCT = "product"
    FEATURE = "feature"
    PLAN = "plan"


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelUpdate:
    name: str | None = None
    description: str | None = None
    metadata: Mapping[str, str] | None = None


LabeledRow = store.ProductRow | store.FeatureRow | store.PlanRow


@overload
def update_catalog_labels(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    *,
    kind: Literal[Labeled.PRODUCT],
    code: str,
    update: LabelUpdate,
) -> store.ProductRow: ...
@overload
def update_catalog_labels(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    *,
    kind: Literal[Labeled.FEATURE],
    code: str,
    update: LabelUpdate,
) -> store.FeatureRow: ...
@overload
def update_catalog_labels(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, *, kind: Literal[Labeled.PLAN], code: str, update: LabelUpdate
) -> store.PlanRow: ...
def update_catalog_labels(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, *, kind: Labeled, code: str, update: LabelUpdate
) -> LabeledRow:
    """The object of `kind` with this code, relabeled (`<kind>_not_found` when there is none)."""

    def work(connection: psycopg.Connection[Any]) -> LabeledRow:
        row = _read(connection, tenant_id, kind, code, for_update=True)
        if row is None:
            raise Rejected.because(f"{kind}_not_found", f"no {kind} {code!r}", kind.value)
        description = getattr(row, "description", "")
        if kind is Labeled.FEATURE and update.description is not None:
            raise Rejected.because(
                "feature_description_not_supported", "a feature has a name and metadata only", "description"
            )
        name = row.name if update.name is None else update.name
        description = description if update.description is None else update.description
        metadata = dict(row.metadata if update.metadata is None else update.metadata)
        check_labels(kind.value, name, description, metadata)
        if (name, description, metadata) == (row.name, getattr(row, "description", ""), row.metadata):
            return row
        store.relabel(connection, tenant_id, _spec(row, name, description, metadata), clock.now())
        updated = _read(connection, tenant_id, kind, code)
        if updated is None:  # pragma: no cover - the row is locked
            raise LookupError(f"{kind} {code} vanished")
        return updated

    return run_in_transaction(engine, work)


def _read(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, kind: Labeled, code: str, *, for_update: bool = False
) -> LabeledRow | None:
    match kind:
        case Labeled.PRODUCT:
            return store.get_product(connection, tenant_id, code, for_update=for_update)
        case Labeled.FEATURE:
            return store.get_feature(connection, tenant_id, code, for_update=for_update)
        case Labeled.PLAN:
            return store.get_plan(connection, tenant_id, code, for_update=for_update)


def _spec(row: LabeledRow, name: str, description: str, metadata: Mapping[str, str]) -> store.LabeledSpec:
    """The row with its new labels, as the spec the store relabels by."""
    match row:
        case store.ProductRow():
            return ProductSpec(code=row.code, name=name, description=description, metadata=metadata)
        case store.FeatureRow():
            return FeatureSpec(code=row.code, name=name, kind=FeatureKind(row.kind), metadata=metadata)
        case store.PlanRow():
            return PlanSpec(code=row.code, name=name, description=description, metadata=metadata)
