"""Create a product: what prices belong to. Its code is unique per tenant (`product_code_taken`)."""

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
from tally.app._catalog_write import PRODUCTS_PER_TENANT_MAX, check_room
from tally.core.catalog.model import ProductSpec
from tally.core.rejections import InvariantViolation, Rejected

Product = store.ProductRow


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductInput:
    code: str
    name: str | None = None  # default: the code
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


def create_product(engine: Engine, clock: Clock, tenant_id: uuid.UUID, product: ProductInput) -> Product:
    spec = ProductSpec(
        code=product.code, name=product.name or product.code, description=product.description, metadata=product.metadata
    )

    def work(connection: psycopg.Connection[Any]) -> Product:
        check_room(connection, tenant_id, "products", PRODUCTS_PER_TENANT_MAX)
        if not store.insert_labeled(connection, spec, row_id=new_id(), tenant_id=tenant_id, now=clock.now()):
            raise Rejected.because("product_code_taken", f"a product {spec.code!r} exists", "code")
        row = store.get_product(connection, tenant_id, spec.code)
        if row is None:
            raise InvariantViolation("the product just inserted must read back")
        return row

    return run_in_transaction(engine, work)
