"""The one write path into the ledger, shared by every posting use case.

For a list of transaction specs, in one database transaction:
  gather — stored transactions with the same idempotency keys; lock every account touched, in id order;
  decide — the core checks each spec in order against balances updated by the specs before it;
  apply  — one statement writes the accepted transactions, their entries and the balance deltas.
Each spec gets its own outcome (posted, replayed, or rejected), so a bad item never blocks the rest.
Deadlocks and lost idempotency races roll back and run again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_ids
from tally.adapters.postgres import ledger as store
from tally.adapters.postgres.connections import RetryRequested, run_in_transaction
from tally.core.ledger import model
from tally.core.ledger.model import Entry, PendingTransaction, TransactionSpec
from tally.core.rejections import InvariantViolation, Rejected, Rejection

LedgerTransaction = store.TransactionRow


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one spec: `transaction` (posted or replayed) or `rejection`."""

    transaction: LedgerTransaction | None
    replayed: bool = False
    rejection: Rejection | None = None

    def unwrap(self) -> LedgerTransaction:
        if self.rejection is not None:
            raise Rejected(self.rejection)
        if self.transaction is None:  # pragma: no cover - an outcome always has one or the other
            raise InvariantViolation("outcome without transaction or rejection")
        return self.transaction


# Given a locked connection, extra checks for resolutions and reversals: the entries it releases.
Precondition = Callable[[psycopg.Connection[Any], TransactionSpec], tuple[Entry, ...]]


def write(
    engine: Engine,
    clock: Clock,
    tenant_id: uuid.UUID,
    specs: Sequence[TransactionSpec],
    *,
    precondition: Precondition | None = None,
    extra_account_ids: Sequence[uuid.UUID] = (),
) -> list[Outcome]:
    for spec in specs:
        model.validate_shape(spec)  # programmer-facing callers validated already; this is the backstop
    decided = run_in_transaction(
        engine,
        lambda connection: _write_once(
            connection, clock, tenant_id, specs, precondition=precondition, extra_account_ids=extra_account_ids
        ),
    )
    # Built once committed: the account locks are not held while this runs.
    final: list[Outcome] = []
    for spec, outcome in zip(specs, decided.outcomes, strict=True):
        if outcome is not None:
            final.append(outcome)
            continue
        new = decided.written[spec.idempotency_key]
        record = _record(tenant_id, new, decided.recorded_at[new.id], spec.idempotency_key)
        final.append(Outcome(record, replayed=len(final) != decided.first_positions[spec.idempotency_key]))
    return final


@dataclass(frozen=True, slots=True)
class _Decided:
    """What one attempt decided and wrote, to be turned into outcomes after the commit."""

    outcomes: list[Outcome | None]  # None: written now (or a repeat, in the same batch, of one written now)
    written: dict[str, store.NewTransaction]
    first_positions: dict[str, int]
    recorded_at: dict[uuid.UUID, datetime]


def _parse_account_id(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _write_once(
    connection: psycopg.Connection[Any],
    clock: Clock,
    tenant_id: uuid.UUID,
    specs: Sequence[TransactionSpec],
    *,
    precondition: Precondition | None,
    extra_account_ids: Sequence[uuid.UUID],
) -> _Decided:
    existing = store.find_transactions_by_keys(connection, tenant_id, [spec.idempotency_key for spec in specs])
    parsed_ids: dict[str, uuid.UUID | None] = {}
    for spec in specs:
        if spec.idempotency_key not in existing:
            for entry in spec.entries:
                if entry.account_id not in parsed_ids:
                    parsed_ids[entry.account_id] = _parse_account_id(entry.account_id)
    account_ids = [parsed for parsed in parsed_ids.values() if parsed is not None]
    locked = store.lock_accounts(connection, tenant_id, [*account_ids, *extra_account_ids])
    accounts: dict[str, model.Account] = {str(account_id): row.to_core() for account_id, row in locked.items()}
    uuid_of = {str(account_id): account_id for account_id in locked}
    balances_before = {account_id: account.balances for account_id, account in accounts.items()}

    now = clock.now()
    outcomes: list[Outcome | None] = []
    accepted: list[TransactionSpec] = []
    accepted_specs: dict[str, tuple[int, TransactionSpec]] = {}
    for position, spec in enumerate(specs):
        original = existing.get(spec.idempotency_key)
        if original is not None:
            outcomes.append(_replay(original.to_spec(), spec, original))
            continue
        earlier = accepted_specs.get(spec.idempotency_key)
        if earlier is not None:  # the same key twice in one batch: the second is a replay of the first
            try:
                first = earlier[1]
                model.compare_replay(first if first.effective_at else replace(first, effective_at=now), spec)
                outcomes.append(None)  # filled in with the first one's transaction once committed
            except Rejected as rejected:
                outcomes.append(Outcome(None, rejection=rejected.rejection))
            continue
        try:
            model.validate_against_accounts(spec, accounts)
            released = precondition(connection, spec) if precondition else ()
            updated = model.apply(spec, accounts, released)
        except Rejected as rejected:
            outcomes.append(Outcome(None, rejection=rejected.rejection))
            continue
        for account_id, balances in updated.items():
            accounts[account_id] = accounts[account_id].with_balances(balances)
        accepted.append(spec)
        accepted_specs[spec.idempotency_key] = (position, spec)
        outcomes.append(None)

    recorded_at: dict[uuid.UUID, datetime] = {}
    by_key: dict[str, store.NewTransaction] = {}
    if accepted:
        ids = iter(new_ids(len(accepted) + sum(len(spec.entries) for spec in accepted)))
        new_transactions = []
        for spec in accepted:
            new = store.NewTransaction(
                id=next(ids),
                spec=spec,
                effective_at=spec.effective_at or now,
                unit_codes=tuple(accounts[entry.account_id].unit_code for entry in spec.entries),
                entry_ids=tuple(next(ids) for _ in spec.entries),
                account_ids=tuple(uuid_of[entry.account_id] for entry in spec.entries),
            )
            new_transactions.append(new)
            by_key[spec.idempotency_key] = new
        deltas = {
            uuid_of[account_id]: store.balance_delta(balances_before[account_id], account.balances)
            for account_id, account in accounts.items()
            if account.balances != balances_before[account_id]
        }
        try:
            recorded_at = store.write_transactions(connection, tenant_id, new_transactions, deltas)
        except errors.UniqueViolation as violation:
            # Another writer took a key, or resolved or reversed the same transaction, first: the
            # retry sees what it wrote (a replay, or a rejection).
            raise RetryRequested from violation
        except errors.CheckViolation as violation:
            raise InvariantViolation(f"the database refused a balance the core accepted: {violation}") from violation
    first_positions = {key: position for key, (position, _) in accepted_specs.items()}
    return _Decided(outcomes, by_key, first_positions, recorded_at)


def _replay(original: TransactionSpec, replay: TransactionSpec, stored: LedgerTransaction) -> Outcome:
    try:
        model.compare_replay(original, replay)
    except Rejected as rejected:
        return Outcome(None, rejection=rejected.rejection)
    return Outcome(stored, replayed=True)


def _record(tenant_id: uuid.UUID, new: store.NewTransaction, recorded_at: datetime, key: str) -> LedgerTransaction:
    spec = new.spec
    phase = spec.kind.phase.value
    return store.TransactionRow(
        id=new.id,
        tenant_id=tenant_id,
        idempotency_key=key,
        kind=spec.kind.value,
        template=spec.template,
        effective_at=new.effective_at,
        recorded_at=recorded_at,
        description=spec.description,
        reference=spec.reference,
        metadata=dict(spec.metadata),
        pending_transaction_id=uuid.UUID(spec.pending_transaction_id) if spec.pending_transaction_id else None,
        reverses_transaction_id=uuid.UUID(spec.reverses_transaction_id) if spec.reverses_transaction_id else None,
        entries=tuple(
            store.EntryRow(
                id=entry_id,
                transaction_id=new.id,
                entry_index=index,
                account_id=account_id,
                direction=entry.direction.value,
                amount=entry.amount,
                unit_code=unit_code,
                phase=phase,
                effective_at=new.effective_at,
            )
            for index, (entry, unit_code, entry_id, account_id) in enumerate(
                zip(spec.entries, new.unit_codes, new.entry_ids, new.account_ids, strict=True)
            )
        ),
    )


def pending_from_row(row: LedgerTransaction, resolved: bool) -> PendingTransaction:
    return PendingTransaction(id=str(row.id), entries=row.to_spec().entries, resolved=resolved)
