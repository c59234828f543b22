"""`tally catalog plan`: what applying these catalog files would change, without changing anything.

gather: the tenant's stored catalog (and custom units); decide: `read_catalog` then `diff_catalog`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Engine

from tally.adapters.postgres import catalog as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app._catalog_state import current_catalog
from tally.core.catalog.diff import CatalogPlan, diff_catalog
from tally.core.catalog.files import CatalogSource, read_catalog


def plan_catalog(engine: Engine, tenant_id: uuid.UUID, sources: Sequence[CatalogSource]) -> CatalogPlan:
    with psycopg_transaction(engine) as connection:
        desired = read_catalog(sources, store.custom_units(connection, tenant_id))
        return diff_catalog(desired, current_catalog(connection, tenant_id))
