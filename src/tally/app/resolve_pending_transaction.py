"""Resolve a pending transaction exactly once: post it (in full or in part) or void it.

Posting in part moves the given amounts and releases the rest of the reservation. A second
resolution of the same pending transaction is refused (`pending_transaction_already_resolved`),
unless it is a replay of the first one's idempotency key, which returns the first.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
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


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolutionInput:
    pending_transaction_id: uuid.UUID | None
    idempotency_key: str
    void: bool = False
    # For a post: the amounts to move (a subset of the reservation). None posts it in full.
    entries: Sequence[Entry] | None = None
    effective_at: datetime | None = None
    description: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)


def resolve_pending_transaction(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, resolution: ResolutionInput
) -> tuple[LedgerTransaction, bool]:
    """Returns the resolving transaction and whether it was a replay."""
    pending = _load_pending(engine, tenant_id, resolution.pending_transaction_id)
    kind = TransactionKind.VOID_PENDING if resolution.void else TransactionKind.POST_PENDING
    if resolution.void:
        entries: tuple[Entry, ...] = ()
    elif resolution.entries is None:
        entries = model.full_post_entries(_ledger_write.pending_from_row(pending, resolved=False))
    else:
        entries = tuple(resolution.entries)
    spec = TransactionSpec(
        idempotency_key=resolution.idempotency_key,
        kind=kind,
        entries=entries,
        effective_at=resolution.effective_at,
        template="void_pending" if resolution.void else "post_pending",
        description=resolution.description,
        reference=pending.reference,
        metadata=dict(resolution.metadata),
        pending_transaction_id=str(pending.id),
    )
    model.validate_shape(spec)

    def precondition(connection: psycopg.Connection[Any], _: TransactionSpec) -> tuple[Entry, ...]:
        # Runs with the pending transaction's accounts locked, so a concurrent resolution is visible.
        resolved = store.find_resolution(connection, pending.id) is not None
        state = _ledger_write.pending_from_row(pending, resolved=resolved)
        model.validate_resolution(spec, state)
        return state.entries

    outcome = _ledger_write.write(
        engine,
        clock,
        tenant_id,
        [spec],
        precondition=precondition,
        extra_account_ids=[entry.account_id for entry in pending.entries],
    )[0]
    return outcome.unwrap(), outcome.replayed


def _load_pending(engine: Engine, tenant_id: uuid.UUID, transaction_id: uuid.UUID | None) -> LedgerTransaction:
    row = None
    if transaction_id is not None:
        with psycopg_transaction(engine) as connection:
            row = store.get_transaction(connection, tenant_id, transaction_id)
    if row is None:
        raise Rejected.because("transaction_not_found", "no such transaction for this tenant", "pending_transaction_id")
    if row.kind != TransactionKind.PENDING.value:
        raise Rejected.because(
            "transaction_must_be_pending",
            "only a pending transaction can be posted or voided",
            "pending_transaction_id",
        )
    return row
