"""Retire a tax rate: invoices computed after this moment no longer apply it (drafts included, at
their next refresh); finalized invoices keep the tax they were issued with. Retiring twice is
refused (`tax_rate_is_retired`)."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import invoicing_terms as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app._invoicing_terms import Connection
from tally.core.rejections import Rejected


def retire_tax_rate(engine: Engine, clock: Clock, tenant_id: uuid.UUID, rate_id: uuid.UUID) -> store.TaxRateRow:
    def work(connection: Connection) -> store.TaxRateRow:
        if store.get_tax_rate(connection, tenant_id, rate_id) is None:
            raise Rejected.because("tax_rate_not_found", "no such tax rate", "id")
        now = clock.now()
        if not store.end_term(connection, tenant_id, "tax_rate", rate_id, ended_at=now, now=now):
            raise Rejected.because("tax_rate_is_retired", "the tax rate is retired already", "id")
        row = store.get_tax_rate(connection, tenant_id, rate_id)
        if row is None:  # pragma: no cover - rates are never deleted
            raise RuntimeError("tax rate vanished")
        return row

    return run_in_transaction(engine, work)
