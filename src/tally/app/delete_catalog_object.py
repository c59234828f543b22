"""Delete a product, a feature or a plan that nothing refers to.

What has been used stays forever — it is how invoices, subscriptions and the ledger explain
themselves — so a delete is only for a mistake or a leftover that nothing was ever built on. It is
a hard delete of a row nothing points to: no history can lose a reference. Anything in use is
refused with 409, and archiving its prices (or publishing a new plan version) is how it retires.

- A **product** with any price, active or archived, is `product_in_use`: a price never goes away,
  and every price names its product.
- A **feature** granted by any plan version, draft or published, is `feature_in_use`. Drop it from
  the draft first; a published version keeps its entitlements forever.
- A **plan** with a published version is `plan_in_use`: published versions may have been
  subscribed to and never change. A plan that was never published is deleted with its draft.

The object is read and locked first (after the tenant's catalog lock, which `catalog apply` holds
while it writes), and plan version writes hold the features they grant, so a concurrent write
either comes first (and the delete sees it and refuses) or finds the object gone. The database's
foreign keys back this up: a price recorded for the product in between still makes the delete
refuse, never half-apply.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal, overload

import psycopg
from sqlalchemy import Engine

from tally.adapters.postgres import catalog as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app.update_catalog_labels import Labeled, LabeledRow
from tally.core.rejections import Rejected


@overload
def delete_catalog_object(
    engine: Engine, tenant_id: uuid.UUID, *, kind: Literal[Labeled.PRODUCT], code: str
) -> store.ProductRow: ...
@overload
def delete_catalog_object(
    engine: Engine, tenant_id: uuid.UUID, *, kind: Literal[Labeled.FEATURE], code: str
) -> store.FeatureRow: ...
@overload
def delete_catalog_object(
    engine: Engine, tenant_id: uuid.UUID, *, kind: Literal[Labeled.PLAN], code: str
) -> store.PlanRow: ...
def delete_catalog_object(engine: Engine, tenant_id: uuid.UUID, *, kind: Labeled, code: str) -> LabeledRow:
    """Deletes the object of `kind` with this code; returns it as it was.

    `<kind>_not_found` (404) when there is none; `<kind>_in_use` (409) when anything refers to it.
    """

    def work(connection: psycopg.Connection[Any]) -> LabeledRow:
        # After any `catalog apply` in progress: it checked the catalog it is writing against.
        store.lock_catalog(connection, tenant_id)
        row = _locked(connection, tenant_id, kind, code)
        if row is None:
            raise Rejected.because(f"{kind}_not_found", f"no {kind} {code!r}", kind.value)
        in_use = _in_use(connection, tenant_id, row)
        if in_use is None:
            in_use = None if _delete(connection, row) else "a record that refers to it was just written"
        if in_use is not None:
            raise Rejected.because(f"{kind}_in_use", f"{kind} {code!r} is in use: {in_use}", kind.value)
        return row

    return run_in_transaction(engine, work)


def _locked(connection: psycopg.Connection[Any], tenant_id: uuid.UUID, kind: Labeled, code: str) -> LabeledRow | None:
    match kind:
        case Labeled.PRODUCT:
            return store.get_product(connection, tenant_id, code, for_update=True)
        case Labeled.FEATURE:
            return store.get_feature(connection, tenant_id, code, for_update=True)
        case Labeled.PLAN:
            return store.get_plan(connection, tenant_id, code, for_update=True)


def _in_use(connection: psycopg.Connection[Any], tenant_id: uuid.UUID, row: LabeledRow) -> str | None:
    """Why the object cannot be deleted, in words, or None when nothing refers to it."""
    match row:
        case store.ProductRow():
            prices = store.prices_of_product(connection, row.id)
            return f"{prices} prices belong to it; archive them instead" if prices else None
        case store.FeatureRow():
            versions = store.versions_granting(connection, tenant_id, row.code)
            return f"{versions} plan versions grant it" if versions else None
        case store.PlanRow():
            if row.published_version is not None:
                return f"version {row.published_version} is published; publish a new version instead"
            return None


def _delete(connection: psycopg.Connection[Any], row: LabeledRow) -> bool:
    match row:
        case store.ProductRow():
            return store.delete_product(connection, row.id)
        case store.FeatureRow():
            store.delete_feature(connection, row.id)
            return True
        case store.PlanRow():
            return store.delete_plan(connection, row.id)
