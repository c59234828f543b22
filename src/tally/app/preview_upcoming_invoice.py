"""The upcoming invoice: what the customer would be billed if their periods ended now.

The same gather and `propose` as the billing run, through the customer's now, with the usage of
periods still under way measured so far (progressive readings, rated without their minimum).
Nothing is written: the draft, if any, is not touched, and the answer includes what it holds.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import customers as customer_store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app._invoicing import gather
from tally.app.customer_clock import clock_for_customer
from tally.app.event_store import EventStore, open_event_store
from tally.core.invoicing import Proposal, propose


@dataclass(frozen=True, slots=True)
class UpcomingInvoice:
    customer: customer_store.CustomerRow
    through: datetime
    proposal: Proposal | None  # None: the customer has no currency, so nothing to bill


def preview_upcoming_invoice(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    customer_id: uuid.UUID,
    *,
    event_store: EventStore | None = None,
) -> UpcomingInvoice:
    usage = event_store or open_event_store(engine)
    with psycopg_transaction(engine) as connection:
        through = clock_for_customer(connection, tenant_id, customer_id, system=clock).now()
        gathered = gather(connection, usage, tenant_id, customer_id, through, preview=True)
        customer = customer_store.get_customer(connection, tenant_id, customer_id)
        # Reads only: rolled back, so even a bug here could not write.
        connection.rollback()
    if customer is None:  # pragma: no cover - gather refused an unknown customer already
        raise LookupError(customer_id)
    return UpcomingInvoice(customer, through, None if gathered is None else propose(gathered.context))
