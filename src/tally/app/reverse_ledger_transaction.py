"""Reverse a posted transaction exactly once: the same entries in the opposite directions.

This is how the ledger is corrected; nothing is ever edited. Pending transactions are voided, not
reversed; a reversal is not itself reversed (post the original again instead).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import ledger as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app import _ledger_write
from tally.app._ledger_write import LedgerTransaction
from tally.core.ledger import model
from tally.core.ledger.model import Entry, TransactionKind, TransactionSpec
from tally.core.rejections import Rejected

REVERSIBLE = frozenset({TransactionKind.POSTED.value, TransactionKind.POST_PENDING.value})


@dataclass(frozen=True, slots=True, kw_only=True)
class ReversalInput:
    transaction_id: uuid.UUID | None
    idempotency_key: str
    effective_at: datetime | None = None
    description: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)


def reverse_transaction(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, reversal: ReversalInput
) -> tuple[LedgerTransaction, bool]:
    """Returns the reversal transaction and whether it was a replay."""
    original = None
    if reversal.transaction_id is not None:
        with psycopg_transaction(engine) as connection:
            original = store.get_transaction(connection, tenant_id, reversal.transaction_id)
    if original is None:
        raise Rejected.because("transaction_not_found", "no such transaction for this tenant", "transaction_id")
    if original.kind not in REVERSIBLE:
        raise Rejected.because(
            "transaction_must_be_posted",
            "only posted transactions are reversed; void a pending one",
            "transaction_id",
        )
    spec = TransactionSpec(
        idempotency_key=reversal.idempotency_key,
        kind=TransactionKind.REVERSAL,
        entries=model.reversal_entries(original.to_spec().entries),
        effective_at=reversal.effective_at,
        template=f"{original.template}.reversal",
        description=reversal.description or f"reversal of {original.description}".strip(),
        reference=original.reference,
        metadata=dict(reversal.metadata),
        reverses_transaction_id=str(original.id),
    )
    model.validate_shape(spec)

    def precondition(connection: psycopg.Connection[Any], _: TransactionSpec) -> tuple[Entry, ...]:
        if store.find_reversal(connection, original.id) is not None:
            raise Rejected.because(
                "transaction_already_reversed", "this transaction was reversed already", "transaction_id"
            )
        return ()

    outcome = _ledger_write.write(engine, clock, tenant_id, [spec], precondition=precondition)[0]
    return outcome.unwrap(), outcome.replayed
