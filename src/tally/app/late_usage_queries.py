"""`late_usage` flags as support and finance read them: `GET /v1/late_usage`, `tally late-usage list`.

A flag is open until its difference reaches a final document — the finalized invoice that bills it
(`_invoicing.resolve_flags_billed_by`) or a late-usage credit note — or a run finds nothing to bill
for it; see tally.core.invoicing.late_usage for the resolutions.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy import Engine

from tally.adapters.pagination import Page, PageRequest
from tally.adapters.postgres import customers as customer_store
from tally.adapters.postgres import late_usage as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.core.rejections import Rejected

LateUsageFlag = store.FlagRow


class FlagStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


def list_late_usage(
    engine: Engine,
    tenant_id: uuid.UUID,
    page: PageRequest,
    *,
    customer_id: uuid.UUID | None = None,
    status: FlagStatus | None = None,
) -> Page[LateUsageFlag]:
    """Newest flag first. Flags carry the customer's external id (the events' own); `customer_id`
    names a customer of tally (`customer_not_found` for an unknown one, or another tenant's)."""
    with psycopg_transaction(engine) as connection:
        external: str | None = None
        if customer_id is not None:
            customer = customer_store.get_customer(connection, tenant_id, customer_id)
            if customer is None:
                raise Rejected.because("customer_not_found", "no such customer", "customer")
            external = customer.external_id
        resolved = None if status is None else status is FlagStatus.RESOLVED
        return store.list_flags(connection, tenant_id, page, customer=external, resolved=resolved)
