"""The one write path into the ledger, shared by every posting use case.

Plain batches (posted and pending transactions, each key once, every account known) go at once:
the core checks each spec against what never changes about its accounts and works out, per account,
the batch's total change and the lowest point its available balance reaches; then one statement,
in a database transaction of its own, locks the accounts and writes everything if every floor holds
at that lowest point and no key is taken (`batch_effect` is exactly equivalent to checking the specs
one by one). No lock is held across a round trip. Anything else — a floor that would break, a
replayed key, an unknown account, a resolution or reversal — goes the careful way:

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
from functools import partial
from typing import Any, NamedTuple

import psycopg
from psycopg import errors
from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.ids import new_id_ints, new_ids, uuid_text
from tally.adapters.postgres import ledger as store
from tally.adapters.postgres.connections import RetryRequested, psycopg_transaction, run_in_transaction, run_pipelined
from tally.core.ledger import model
from tally.core.ledger.model import Direction, Entry, PendingTransaction, TransactionKind, TransactionSpec
from tally.core.rejections import InvariantViolation, Rejected, Rejection

LedgerTransaction = store.TransactionRow


class Outcome:
    """What happened to one spec: `transaction` (posted or replayed) or `rejection`.

    A transaction written now is turned into its record on first use (`build`): a batch caller
    that only looks at rejections does not pay for a thousand records it never reads.
    """

    __slots__ = ("_build", "_transaction", "rejection", "replayed")

    def __init__(
        self,
        transaction: LedgerTransaction | None = None,
        replayed: bool = False,
        rejection: Rejection | None = None,
        *,
        build: Callable[[], LedgerTransaction] | None = None,
    ) -> None:
        self._transaction = transaction
        self._build = build
        self.replayed = replayed
        self.rejection = rejection

    @property
    def transaction(self) -> LedgerTransaction | None:
        if self._transaction is None and self._build is not None:
            self._transaction, self._build = self._build(), None
        return self._transaction

    def unwrap(self) -> LedgerTransaction:
        if self.rejection is not None:
            raise Rejected(self.rejection)
        transaction = self.transaction
        if transaction is None:  # pragma: no cover - an outcome always has one or the other
            raise InvariantViolation("outcome without transaction or rejection")
        return transaction

    def __repr__(self) -> str:
        return f"Outcome(transaction={self.transaction!r}, replayed={self.replayed}, rejection={self.rejection!r})"


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
    shapes_checked: bool = False,
) -> list[Outcome]:
    """Post `specs` in order, each on its own: posted, replayed or rejected. `shapes_checked`: the
    caller ran `model.validate_shape` on every spec already; otherwise it runs here."""
    if not shapes_checked:
        for spec in specs:
            model.validate_shape(spec)
    if precondition is None and not extra_account_ids:
        at_once = _write_at_once(engine, clock, tenant_id, specs)
        if at_once is not None:
            return at_once
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


class _Known(NamedTuple):
    account: model.Account  # balances not filled: only what never changes
    id: uuid.UUID
    text: str  # the id's canonical text


# What never changes about an account (unit, normal balance, floor), by tenant and id, so a plain
# batch is checked without a round trip. The write statement checks it again under the row locks,
# so an entry here can never cause a wrong write, only a detour through the careful path.
_ACCOUNTS_KNOWN: dict[tuple[uuid.UUID, str], _Known] = {}
ACCOUNTS_KNOWN_MAX = 100_000
_AT_ONCE_KINDS = (TransactionKind.POSTED, TransactionKind.PENDING)


def _known_accounts(engine: Engine, tenant_id: uuid.UUID, account_ids: set[str]) -> dict[str, _Known] | None:
    """The accounts by id, from memory or one read without locks; None if one is unknown."""
    found: dict[str, _Known] = {}
    missing: dict[uuid.UUID, str] = {}
    for account_id in account_ids:
        known = _ACCOUNTS_KNOWN.get((tenant_id, account_id))
        if known is not None:
            found[account_id] = known
            continue
        parsed = _parse_account_id(account_id)
        if parsed is None:
            return None
        missing[parsed] = account_id
    if missing:
        with psycopg_transaction(engine) as connection:
            statics = store.account_statics(connection, tenant_id, missing)
        if len(statics) != len(missing):
            return None
        if len(_ACCOUNTS_KNOWN) + len(statics) > ACCOUNTS_KNOWN_MAX:
            _ACCOUNTS_KNOWN.clear()
        for parsed, static in statics.items():
            account_id = missing[parsed]
            account = model.Account(
                account_id, static.unit_code, Direction(static.normal_balance), static.minimum_balance
            )
            found[account_id] = _ACCOUNTS_KNOWN[(tenant_id, account_id)] = _Known(account, parsed, str(parsed))
    return found


def _write_at_once(
    engine: Engine, clock: Clock, tenant_id: uuid.UUID, specs: Sequence[TransactionSpec]
) -> list[Outcome] | None:
    """Write a plain batch in one round trip; None (nothing written) when it needs the careful path."""
    keys: set[str] = set()
    account_ids: set[str] = set()
    for spec in specs:
        if spec.kind not in _AT_ONCE_KINDS or spec.idempotency_key in keys:
            return None
        keys.add(spec.idempotency_key)
        account_ids.update(entry.account_id for entry in spec.entries)
    known = _known_accounts(engine, tenant_id, account_ids)
    if known is None:
        return None
    accounts = {account_id: entry.account for account_id, entry in known.items()}
    try:
        for spec in specs:
            model.validate_against_accounts(spec, accounts)
    except Rejected:
        return None
    effects = model.batch_effect(specs, accounts)
    now = clock.now()
    ids = iter(new_id_ints(len(specs) + sum(len(spec.entries) for spec in specs)))
    batch = []
    for spec in specs:
        entry_accounts = [known[entry.account_id] for entry in spec.entries]
        batch.append(
            store.BatchTransaction(
                id=uuid_text(next(ids)),
                spec=spec,
                effective_at=spec.effective_at or now,
                entry_ids=[uuid_text(next(ids)) for _ in spec.entries],
                account_ids=[entry.text for entry in entry_accounts],
                unit_codes=[entry.account.unit_code for entry in entry_accounts],
            )
        )
    moves = {
        known[account_id].text: store.AccountMove(
            delta=effect.delta,
            available_change_lowest=effect.available_change_lowest,
            unit_code=accounts[account_id].unit_code,
            normal_balance=accounts[account_id].normal_balance.value,
        )
        for account_id, effect in effects.items()
    }
    try:
        recorded_at = run_pipelined(
            engine, lambda connection: store.write_if_floors_hold(connection, tenant_id, batch, moves)
        )
    except errors.UniqueViolation:
        return None  # a concurrent writer took a key: the careful path replays or refuses it
    if recorded_at is None:
        return None
    return [Outcome(build=partial(_batch_record, tenant_id, new, recorded_at[new.id])) for new in batch]


def _batch_record(tenant_id: uuid.UUID, new: store.BatchTransaction, recorded_at: datetime) -> LedgerTransaction:
    written = store.NewTransaction(
        id=uuid.UUID(new.id),
        spec=new.spec,
        effective_at=new.effective_at,
        unit_codes=tuple(new.unit_codes),
        entry_ids=tuple(uuid.UUID(entry_id) for entry_id in new.entry_ids),
        account_ids=tuple(uuid.UUID(account_id) for account_id in new.account_ids),
    )
    return _record(tenant_id, written, recorded_at, new.spec.idempotency_key)


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


@dataclass(frozen=True, slots=True)
class Written:
    """One spec written inside a caller's transaction: its transaction id, or why it was refused."""

    transaction_id: uuid.UUID | None
    rejection: Rejection | None


def write_in(
    connection: psycopg.Connection[Any], clock: Clock, tenant_id: uuid.UUID, specs: Sequence[TransactionSpec]
) -> list[Written]:
    """Post `specs` inside the caller's database transaction, so what they pay for (an invoice
    finalized, a payment recorded) commits or rolls back with them. The careful path: the accounts
    are locked in id order. A lost idempotency race raises `RetryRequested`, so the caller runs in
    `run_in_transaction`; the accounts must exist already (`ensure_accounts`)."""
    for spec in specs:
        model.validate_shape(spec)
    decided = _write_once(connection, clock, tenant_id, specs, precondition=None, extra_account_ids=())
    written: list[Written] = []
    for spec, outcome in zip(specs, decided.outcomes, strict=True):
        if outcome is None:
            written.append(Written(decided.written[spec.idempotency_key].id, None))
        elif outcome.rejection is not None:
            written.append(Written(None, outcome.rejection))
        else:
            written.append(Written(outcome.unwrap().id, None))
    return written
