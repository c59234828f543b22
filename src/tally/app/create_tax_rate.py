"""Record a tax rate: for one customer or (no customer) the tenant's default, for every product or
one product. The billing run applies a customer's own rates in force, else the tenant's defaults;
a product's rates replace the default ones for its lines. Rates are frozen facts: a changed rate is
a new rate and the old one retired.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id
from tally.adapters.postgres import catalog as catalog_store
from tally.adapters.postgres import customers as customer_store
from tally.adapters.postgres import invoicing_terms as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app._invoicing_terms import Connection, mark_customer_due
from tally.core.invoicing import TaxRate
from tally.core.rejections import Rejected

NAME_LENGTH_MAX = 200
JURISDICTION_LENGTH_MAX = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class TaxRateInput:
    name: str
    percent: Decimal
    customer_id: uuid.UUID | None = None
    product: str | None = None
    jurisdiction: str = ""


def create_tax_rate(engine: Engine, clock: Clock, tenant_id: uuid.UUID, request: TaxRateInput) -> store.TaxRateRow:
    if not 1 <= len(request.name) <= NAME_LENGTH_MAX:
        raise Rejected.because("name_length_must_be_1_to_200", "names have 1 to 200 characters", "name")
    if len(request.jurisdiction) > JURISDICTION_LENGTH_MAX:
        raise Rejected.because("jurisdiction_too_long", "a jurisdiction has at most 200 characters", "jurisdiction")

    def work(connection: Connection) -> store.TaxRateRow:
        if (
            request.customer_id is not None
            and customer_store.get_customer(connection, tenant_id, request.customer_id) is None
        ):
            raise Rejected.because("customer_not_found", "no such customer", "customer")
        if request.product is not None and catalog_store.get_product(connection, tenant_id, request.product) is None:
            raise Rejected.because("product_not_found", "no such product", "product")
        row = store.TaxRateRow(
            id=new_id(),
            tenant_id=tenant_id,
            customer_id=request.customer_id,
            product=request.product,
            name=request.name,
            jurisdiction=request.jurisdiction,
            percent=request.percent,
            recorded_at=clock.now(),
            ended_at=None,
        )
        TaxRate(rate_id=str(row.id), name=row.name, percent=row.percent, jurisdiction=row.jurisdiction)
        store.insert_tax_rate(connection, row)
        if request.customer_id is not None:
            mark_customer_due(connection, tenant_id, request.customer_id, row.recorded_at)
        return row

    return run_in_transaction(engine, work)
