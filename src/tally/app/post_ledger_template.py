"""Post a named posting template: how business code (invoicing, credits, payments) writes money.

The template names accounts by role; this resolves them to the tenant's chart accounts, creating
them on first use, then posts through the one write path.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.app import _ledger_write
from tally.app._ledger_write import LedgerTransaction
from tally.app.ledger_accounts import ensure_accounts
from tally.core.ledger import model
from tally.core.ledger.model import Entry, TransactionKind, TransactionSpec
from tally.core.ledger.templates import Posting


def post_template(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    posting: Posting,
    *,
    idempotency_key: str,
    effective_at: datetime | None = None,
    reference: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    pending: bool = False,
) -> tuple[LedgerTransaction, bool]:
    """Returns the transaction and whether it was a replay of `idempotency_key`."""
    refs = list(dict.fromkeys(entry.account for entry in posting.entries))
    accounts = ensure_accounts(engine, tenant_id, refs)
    spec = TransactionSpec(
        idempotency_key=idempotency_key,
        kind=TransactionKind.PENDING if pending else TransactionKind.POSTED,
        entries=tuple(
            Entry(str(accounts[entry.account].id), entry.direction, entry.amount) for entry in posting.entries
        ),
        effective_at=effective_at,
        template=posting.template,
        description=posting.description,
        reference=reference,
        metadata={**dict(posting.metadata), **(metadata or {})},
    )
    model.validate_shape(spec)
    outcome = _ledger_write.write(engine, clock, tenant_id, [spec])[0]
    return outcome.unwrap(), outcome.replayed
