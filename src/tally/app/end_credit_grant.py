"""Expire a credit grant now, before its expiry (a grant given by mistake, a contract ended).

Under the customer's invoicing lock: the end is recorded (append-only; a grant ends once:
`credit_grant_is_expired` otherwise), what is left of the grant is posted as `credits_expired`
exactly as the scheduled expiry would post it, and the customer's draft is refreshed so it no longer
counts on the grant. Credits already applied to invoices stay applied.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import invoicing_terms as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app._invoicing_terms import Locked, event_store_refresh, expire_due, locked
from tally.app.event_store import open_event_store
from tally.core.rejections import Rejected


def end_credit_grant(engine: Engine, clock: Clock, tenant_id: uuid.UUID, grant_id: uuid.UUID) -> store.GrantRow:
    with psycopg_transaction(engine) as connection:
        found = store.get_grant(connection, tenant_id, grant_id)
    if found is None:
        raise Rejected.because("credit_grant_not_found", "no such credit grant", "id")
    refresh = event_store_refresh(open_event_store(engine), engine, clock)

    def act(here: Locked) -> store.GrantRow:
        grant = store.get_grant(here.connection, tenant_id, grant_id)
        if grant is None:  # pragma: no cover - grants are never deleted
            raise RuntimeError("grant vanished")
        expires_at = grant.expires_effectively_at
        if (expires_at is not None and expires_at <= here.now) or not store.end_term(
            here.connection, tenant_id, "credit_grant", grant_id, ended_at=here.now, now=here.now
        ):
            raise Rejected.because("credit_grant_is_expired", "the credit grant has expired already", "id")
        expire_due(here, refresh)
        after = store.get_grant(here.connection, tenant_id, grant_id)
        if after is None:  # pragma: no cover
            raise RuntimeError("grant vanished")
        return after

    return locked(engine, clock, tenant_id, found.customer_id, act)
