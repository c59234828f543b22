"""Post ledger transactions: one, or a batch with an outcome per item.

Entries name accounts by id. An amount is an integer of the unit's smallest part, or an exact
decimal in major units (converted here, refusing digits the unit does not have).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import ledger as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app import _ledger_write
from tally.app._ledger_write import LedgerTransaction, Outcome
from tally.app.ledger_accounts import resolve_unit
from tally.core import money
from tally.core.ledger import model
from tally.core.ledger.model import Direction, Entry, TransactionKind, TransactionSpec
from tally.core.rejections import InvariantViolation, Rejected


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryInput:
    account_id: uuid.UUID | None  # None: an id that could not be parsed; rejected as unknown
    direction: Direction
    amount: int | None = None
    amount_decimal: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionInput:
    idempotency_key: str
    entries: tuple[EntryInput, ...]
    pending: bool = False
    effective_at: datetime | None = None
    description: str = ""
    reference: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


UNKNOWN_ACCOUNT = "unknown"


def post_transaction(engine: Engine, clock: Clock, tenant_id: uuid.UUID, transaction: TransactionInput) -> Outcome:
    """Post one transaction. A rejection is raised (`Rejected`); a replay returns the original."""
    outcome = post_batch(engine, clock, tenant_id, [transaction])[0]
    outcome.unwrap()
    return outcome


def post_batch(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, transactions: Sequence[TransactionInput]
) -> list[Outcome]:
    """Post up to `TRANSACTIONS_PER_BATCH_MAX` transactions in one database transaction.

    Items are independent: each is posted, replayed or rejected on its own, in order, each seeing
    the balances left by the items before it.
    """
    if not 1 <= len(transactions) <= model.TRANSACTIONS_PER_BATCH_MAX:
        raise Rejected.because(
            "batch_size_out_of_range",
            f"a batch has 1 to {model.TRANSACTIONS_PER_BATCH_MAX} transactions",
            "transactions",
        )
    specs: list[TransactionSpec | None] = []
    outcomes: list[Outcome | None] = []
    units = _units_for_decimal_amounts(engine, tenant_id, transactions)
    for transaction in transactions:
        try:
            spec = to_spec(transaction, units)
            model.validate_shape(spec)
        except Rejected as rejected:
            specs.append(None)
            outcomes.append(Outcome(None, rejection=rejected.rejection))
            continue
        specs.append(spec)
        outcomes.append(None)
    valid = [spec for spec in specs if spec is not None]
    written = iter(_ledger_write.write(engine, clock, tenant_id, valid, shapes_checked=True) if valid else [])
    return [outcome if outcome is not None else next(written) for outcome in outcomes]


def to_spec(transaction: TransactionInput, units: Mapping[uuid.UUID, money.Unit]) -> TransactionSpec:
    entries = []
    for index, entry in enumerate(transaction.entries):
        account_id = str(entry.account_id) if entry.account_id else UNKNOWN_ACCOUNT
        amount = entry.amount
        if amount is None or entry.amount_decimal is not None:  # the common case, an integer, goes straight
            amount = _amount_minor(entry, index, units)
        entries.append(Entry(account_id, entry.direction, amount))
    return TransactionSpec(
        idempotency_key=transaction.idempotency_key,
        kind=TransactionKind.PENDING if transaction.pending else TransactionKind.POSTED,
        entries=tuple(entries),
        effective_at=transaction.effective_at,
        description=transaction.description,
        reference=transaction.reference,
        metadata=dict(transaction.metadata),
    )


def _amount_minor(entry: EntryInput, index: int, units: Mapping[uuid.UUID, money.Unit]) -> int:
    field_name = f"entries[{index}].amount"
    if (entry.amount is None) == (entry.amount_decimal is None):
        raise Rejected.because("amount_required", "give exactly one of amount and amount_decimal", field_name)
    if entry.amount is not None:
        return entry.amount
    unit = units.get(entry.account_id) if entry.account_id else None
    if unit is None:
        raise Rejected.because("account_must_exist", "no such account for this tenant", f"entries[{index}].account_id")
    if entry.amount_decimal is None:
        raise InvariantViolation("an entry's amount was parsed when the request was validated")
    return money.minor_from_decimal(entry.amount_decimal, unit, f"entries[{index}].amount_decimal")


def _units_for_decimal_amounts(
    engine: Engine, tenant_id: uuid.UUID, transactions: Sequence[TransactionInput]
) -> dict[uuid.UUID, money.Unit]:
    """Units of the accounts whose entries give decimal amounts (read without locks: units never change)."""
    account_ids = {
        entry.account_id
        for transaction in transactions
        for entry in transaction.entries
        if entry.amount_decimal is not None and entry.account_id is not None
    }
    if not account_ids:
        return {}
    with psycopg_transaction(engine) as connection:
        rows = store.fetch_accounts(connection, tenant_id, account_ids)
        return {account_id: resolve_unit(connection, tenant_id, row.unit_code) for account_id, row in rows.items()}


__all__ = ["EntryInput", "LedgerTransaction", "Outcome", "TransactionInput", "post_batch", "post_transaction"]
