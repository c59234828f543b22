"""Create a price: a product's price, in the rating core's document format, immutable once created.

gather: the product (by code), the tenant's custom units, whether the meter exists;
decide:  `price_from_document` (every pricing rule, in the core's fixed order), stored canonical;
apply:   insert. One active price per code (`price_code_taken`): to change a price, create a new
         one under another code or archive the old one first — `tally catalog apply` does both in
         one transaction.
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
from tally.app._catalog_write import insert_price
from tally.core.catalog.files import located
from tally.core.catalog.model import check_code, check_metadata
from tally.core.rating import price_from_document
from tally.core.rejections import Rejected

PriceRow = store.PriceRow


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceInput:
    code: str
    product: str  # the product's code
    price: Mapping[str, Any]  # a price document (docs/pricing.md)
    metadata: Mapping[str, str] = field(default_factory=dict)


def create_price(engine: Engine, clock: Clock, tenant_id: uuid.UUID, price: PriceInput) -> PriceRow:
    check_code(price.code, "price")
    check_code(price.product, "product", "product")
    metadata = check_metadata(price.metadata)

    def work(connection: psycopg.Connection[Any]) -> PriceRow:
        product = store.get_product(connection, tenant_id, price.product)
        if product is None:
            raise Rejected.because("product_must_exist", f"no product {price.product!r}", "product")
        with located("price"):
            parsed = price_from_document(price.price, store.custom_units(connection, tenant_id))
        return insert_price(
            connection,
            tenant_id,
            code=price.code,
            product_id=product.id,
            price=parsed,
            metadata=metadata,
            now=clock.now(),
        )

    return run_in_transaction(engine, work)
