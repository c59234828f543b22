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
from tally.adapters.ids import new_id
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
    return run_in_transaction(
        engine,
        lambda connection: _write_once(
            connection, clock, tenant_id, specs, precondition=precondition, extra_account_ids=extra_account_ids
        ),
    )


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
) -> list[Outcome]:
    existing = store.find_transactions_by_keys(connection, tenant_id, [spec.idempotency_key for spec in specs])
    account_ids = {
        parsed
        for spec in specs
        if spec.idempotency_key not in existing
        for entry in spec.entries
        if (parsed := _parse_account_id(entry.account_id)) is not None
    }
    locked = store.lock_accounts(connection, tenant_id, [*account_ids, *extra_account_ids])
    accounts: dict[str, model.Account] = {str(account_id): row.to_core() for account_id, row in locked.items()}
    unit_codes = {str(account_id): row.unit_code for account_id, row in locked.items()}
    balances_before = {account_id: account.balances for account_id, account in accounts.items()}

    now = clock.now()
    outcomes: list[Outcome | None] = []
    accepted: list[store.NewTransaction] = []
    accepted_specs: dict[str, tuple[int, TransactionSpec]] = {}
    for position, spec in enumerate(specs):
        original = existing.get(spec.idempotency_key)
        if original is not None:
            outcomes.append(_replay(original.to_spec(), spec, original))
            continue
        earlier = accepted_specs.get(spec.idempotency_key)
        if earlier is not None:  # the same key twice in one batch: the second is a replay of the first
            try:
                model.compare_replay(earlier[1], spec)
                outcomes.append(None)  # filled in with the first one's transaction below
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
            accounts[account_id] = replace(accounts[account_id], balances=balances)
        effective_at = spec.effective_at or now
        stored_spec = replace(spec, effective_at=effective_at)
        accepted.append(
            store.NewTransaction(
                id=new_id(),
                spec=stored_spec,
                effective_at=effective_at,
                unit_codes=tuple(unit_codes[entry.account_id] for entry in spec.entries),
                entry_ids=tuple(new_id() for _ in spec.entries),
            )
        )
        accepted_specs[spec.idempotency_key] = (position, stored_spec)
        outcomes.append(None)

    written: dict[uuid.UUID, datetime] = {}
    if accepted:
        deltas = {
            uuid.UUID(account_id): store.balance_delta(balances_before[account_id], account.balances)
            for account_id, account in accounts.items()
            if account.balances != balances_before[account_id]
        }
        try:
            result = store.write_transactions(connection, tenant_id, accepted, deltas)
        except errors.UniqueViolation as violation:
            # Another writer resolved or reversed the same transaction first; the retry will see it.
            raise RetryRequested from violation
        except errors.CheckViolation as violation:
            raise InvariantViolation(f"the database refused a balance the core accepted: {violation}") from violation
        if result is None:
            raise RetryRequested  # an idempotency key was taken concurrently: the retry replays it
        written = result

    by_key = {new.spec.idempotency_key: new for new in accepted}
    final: list[Outcome] = []
    for spec, outcome in zip(specs, outcomes, strict=True):
        if outcome is not None:
            final.append(outcome)
            continue
        new = by_key[spec.idempotency_key]
        first_position = accepted_specs[spec.idempotency_key][0]
        record = _record(tenant_id, new, written[new.id], spec.idempotency_key)
        final.append(Outcome(record, replayed=len(final) != first_position))
    return final


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
                account_id=uuid.UUID(entry.account_id),
                direction=entry.direction.value,
                amount=entry.amount,
                unit_code=unit_code,
                phase=phase,
                effective_at=new.effective_at,
            )
            for index, (entry, unit_code, entry_id) in enumerate(
                zip(spec.entries, new.unit_codes, new.entry_ids, strict=True)
            )
        ),
    )


def pending_from_row(row: LedgerTransaction, resolved: bool) -> PendingTransaction:
    return PendingTransaction(id=str(row.id), entries=row.to_spec().entries, resolved=resolved)
