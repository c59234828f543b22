"""The ledger's PostgreSQL side: row ↔ core values, account locks, and the write statements.

Hot paths use the psycopg connection underneath SQLAlchemy directly: one round trip to lock the
accounts, one statement that inserts the transaction, its entries and moves the cached balances
together (data-modifying CTEs), so a posting costs about what the simplest raw-SQL transfer costs.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tally.core.ledger.model import (
    Account,
    Balances,
    Direction,
    Entry,
    TransactionKind,
    TransactionSpec,
)


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    code: str
    name: str
    type: str
    normal_balance: str
    unit_code: str
    unit_scale: int
    customer_id: str | None
    minimum_balance: int | None
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int
    created_at: datetime
    metadata: dict[str, Any]

    def to_core(self) -> Account:
        return Account(
            id=str(self.id),
            unit_code=self.unit_code,
            normal_balance=Direction(self.normal_balance),
            minimum_balance=self.minimum_balance,
            balances=Balances(self.debits_posted, self.credits_posted, self.debits_pending, self.credits_pending),
        )


ACCOUNT_COLUMNS = (
    "id, tenant_id, code, name, type, normal_balance, unit_code, unit_scale, customer_id, minimum_balance, "
    "debits_posted, credits_posted, debits_pending, credits_pending, created_at, metadata"
)


@dataclass(frozen=True, slots=True)
class EntryRow:
    id: uuid.UUID
    transaction_id: uuid.UUID
    entry_index: int
    account_id: uuid.UUID
    direction: str
    amount: int
    unit_code: str
    phase: str
    effective_at: datetime
    recorded_at: datetime | None = None  # filled where an entry is listed on its own


@dataclass(frozen=True, slots=True)
class TransactionRow:
    id: uuid.UUID
    tenant_id: uuid.UUID
    idempotency_key: str
    kind: str
    template: str
    effective_at: datetime
    recorded_at: datetime
    description: str
    reference: str | None
    metadata: dict[str, Any]
    pending_transaction_id: uuid.UUID | None
    reverses_transaction_id: uuid.UUID | None
    entries: tuple[EntryRow, ...]

    def to_spec(self) -> TransactionSpec:
        return TransactionSpec(
            idempotency_key=self.idempotency_key,
            kind=TransactionKind(self.kind),
            entries=tuple(
                Entry(str(entry.account_id), Direction(entry.direction), entry.amount) for entry in self.entries
            ),
            effective_at=self.effective_at,
            template=self.template,
            description=self.description,
            reference=self.reference,
            metadata=self.metadata,
            pending_transaction_id=str(self.pending_transaction_id) if self.pending_transaction_id else None,
            reverses_transaction_id=str(self.reverses_transaction_id) if self.reverses_transaction_id else None,
        )


TRANSACTION_COLUMNS = (
    "id, tenant_id, idempotency_key, kind, template, effective_at, recorded_at, description, reference, "
    "metadata, pending_transaction_id, reverses_transaction_id"
)
ENTRY_COLUMNS = "id, transaction_id, entry_index, account_id, direction, amount, unit_code, phase, effective_at"


def lock_accounts(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, account_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, AccountRow]:
    """Lock the tenant's accounts among `account_ids` in id order (one global order: no deadlocks)."""
    rows = connection.execute(
        f"SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE tenant_id = %s AND id = ANY(%s) ORDER BY id FOR UPDATE",
        (tenant_id, sorted(set(account_ids))),
    ).fetchall()
    return {row[0]: AccountRow(*row) for row in rows}


def fetch_accounts(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, account_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, AccountRow]:
    rows = connection.execute(
        f"SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE tenant_id = %s AND id = ANY(%s)",
        (tenant_id, list(set(account_ids))),
    ).fetchall()
    return {row[0]: AccountRow(*row) for row in rows}


def _transactions_with_entries(
    connection: psycopg.Connection[Any], where: str, parameters: Sequence[Any]
) -> list[TransactionRow]:
    headers = connection.execute(
        f"SELECT {TRANSACTION_COLUMNS} FROM ledger_transactions WHERE {where}", parameters
    ).fetchall()
    if not headers:
        return []
    entry_rows = connection.execute(
        f"SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE transaction_id = ANY(%s) "
        "ORDER BY transaction_id, entry_index",
        ([header[0] for header in headers],),
    ).fetchall()
    entries_by_transaction: dict[uuid.UUID, list[EntryRow]] = {}
    for row in entry_rows:
        entries_by_transaction.setdefault(row[1], []).append(EntryRow(*row))
    return [_transaction_row(header, tuple(entries_by_transaction.get(header[0], ()))) for header in headers]


def _transaction_row(header: Sequence[Any], entries: tuple[EntryRow, ...]) -> TransactionRow:
    (
        id_,
        tenant_id,
        key,
        kind,
        template,
        effective_at,
        recorded_at,
        description,
        reference,
        metadata,
        pending,
        reverses,
    ) = header
    return TransactionRow(
        id=id_,
        tenant_id=tenant_id,
        idempotency_key=key,
        kind=kind,
        template=template,
        effective_at=effective_at,
        recorded_at=recorded_at,
        description=description,
        reference=reference,
        metadata=metadata,
        pending_transaction_id=pending,
        reverses_transaction_id=reverses,
        entries=entries,
    )


def find_transactions_by_keys(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, keys: Sequence[str]
) -> dict[str, TransactionRow]:
    found = _transactions_with_entries(
        connection, "tenant_id = %s AND idempotency_key = ANY(%s)", (tenant_id, list(keys))
    )
    return {row.idempotency_key: row for row in found}


def get_transaction(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, transaction_id: uuid.UUID
) -> TransactionRow | None:
    found = _transactions_with_entries(connection, "tenant_id = %s AND id = %s", (tenant_id, transaction_id))
    return found[0] if found else None


def find_resolution(connection: psycopg.Connection[Any], pending_transaction_id: uuid.UUID) -> uuid.UUID | None:
    row = connection.execute(
        "SELECT id FROM ledger_transactions WHERE pending_transaction_id = %s", (pending_transaction_id,)
    ).fetchone()
    return row[0] if row else None


def find_reversal(connection: psycopg.Connection[Any], transaction_id: uuid.UUID) -> uuid.UUID | None:
    row = connection.execute(
        "SELECT id FROM ledger_transactions WHERE reverses_transaction_id = %s", (transaction_id,)
    ).fetchone()
    return row[0] if row else None


@dataclass(frozen=True, slots=True)
class NewTransaction:
    """A validated transaction ready to write, with the balance deltas it causes."""

    id: uuid.UUID
    spec: TransactionSpec
    effective_at: datetime
    unit_codes: tuple[str, ...]  # one per entry, in entry order
    entry_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True, slots=True)
class BalanceDelta:
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0


_WRITE_TRANSACTIONS = """
WITH new_transactions AS (
    INSERT INTO ledger_transactions (
        id, tenant_id, idempotency_key, kind, template, effective_at, description, reference, metadata,
        pending_transaction_id, reverses_transaction_id, entry_count)
    SELECT t.id, %(tenant_id)s, t.idempotency_key, t.kind, t.template, t.effective_at, t.description, t.reference,
           t.metadata, t.pending_transaction_id, t.reverses_transaction_id, t.entry_count
    FROM unnest(%(t_id)s::uuid[], %(t_key)s::text[], %(t_kind)s::text[], %(t_template)s::text[],
                %(t_effective_at)s::timestamptz[], %(t_description)s::text[], %(t_reference)s::text[],
                %(t_metadata)s::jsonb[], %(t_pending)s::uuid[], %(t_reverses)s::uuid[], %(t_entry_count)s::int2[])
         AS t(id, idempotency_key, kind, template, effective_at, description, reference, metadata,
              pending_transaction_id, reverses_transaction_id, entry_count)
    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
    RETURNING id, recorded_at
), new_entries AS (
    INSERT INTO ledger_entries (
        id, tenant_id, transaction_id, entry_index, account_id, direction, amount, unit_code, phase, effective_at)
    SELECT e.id, %(tenant_id)s, e.transaction_id, e.entry_index, e.account_id, e.direction, e.amount, e.unit_code,
           e.phase, e.effective_at
    FROM unnest(%(e_id)s::uuid[], %(e_transaction)s::uuid[], %(e_index)s::int2[], %(e_account)s::uuid[],
                %(e_direction)s::text[], %(e_amount)s::int8[], %(e_unit)s::text[], %(e_phase)s::text[],
                %(e_effective_at)s::timestamptz[])
         AS e(id, transaction_id, entry_index, account_id, direction, amount, unit_code, phase, effective_at)
    WHERE (SELECT count(*) FROM new_transactions) = %(transaction_count)s
), moved AS (
    UPDATE ledger_accounts AS a
    SET debits_posted = a.debits_posted + d.debits_posted,
        credits_posted = a.credits_posted + d.credits_posted,
        debits_pending = a.debits_pending + d.debits_pending,
        credits_pending = a.credits_pending + d.credits_pending
    FROM unnest(%(d_account)s::uuid[], %(d_debits_posted)s::int8[], %(d_credits_posted)s::int8[],
                %(d_debits_pending)s::int8[], %(d_credits_pending)s::int8[])
         AS d(account_id, debits_posted, credits_posted, debits_pending, credits_pending)
    WHERE a.id = d.account_id AND (SELECT count(*) FROM new_transactions) = %(transaction_count)s
)
SELECT id, recorded_at FROM new_transactions
"""


_WRITE_COLUMNS = (
    *("t_id", "t_key", "t_kind", "t_template", "t_effective_at", "t_description", "t_reference", "t_metadata"),
    *("t_pending", "t_reverses", "t_entry_count", "e_id", "e_transaction", "e_index", "e_account", "e_direction"),
    *("e_amount", "e_unit", "e_phase", "e_effective_at"),
)


def write_transactions(
    connection: psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    transactions: Sequence[NewTransaction],
    deltas: Mapping[uuid.UUID, BalanceDelta],
) -> dict[uuid.UUID, datetime] | None:
    """Insert the transactions and entries and move the balances, all in one statement.

    Returns each new transaction's `recorded_at`, or None when some idempotency key was taken by a
    concurrent writer first: then nothing was written and the caller retries (and finds a replay).
    The caller holds the account locks.
    """
    parameters: dict[str, Any] = {"tenant_id": tenant_id, "transaction_count": len(transactions)}
    columns: dict[str, list[Any]] = {name: [] for name in _WRITE_COLUMNS}
    for new in transactions:
        spec = new.spec
        columns["t_id"].append(new.id)
        columns["t_key"].append(spec.idempotency_key)
        columns["t_kind"].append(spec.kind.value)
        columns["t_template"].append(spec.template)
        columns["t_effective_at"].append(new.effective_at)
        columns["t_description"].append(spec.description)
        columns["t_reference"].append(spec.reference)
        columns["t_metadata"].append(Jsonb(dict(spec.metadata)))
        columns["t_pending"].append(uuid.UUID(spec.pending_transaction_id) if spec.pending_transaction_id else None)
        columns["t_reverses"].append(uuid.UUID(spec.reverses_transaction_id) if spec.reverses_transaction_id else None)
        columns["t_entry_count"].append(len(spec.entries))
        phase = spec.kind.phase.value
        for index, (entry, unit_code, entry_id) in enumerate(
            zip(spec.entries, new.unit_codes, new.entry_ids, strict=True)
        ):
            columns["e_id"].append(entry_id)
            columns["e_transaction"].append(new.id)
            columns["e_index"].append(index)
            columns["e_account"].append(uuid.UUID(entry.account_id))
            columns["e_direction"].append(entry.direction.value)
            columns["e_amount"].append(entry.amount)
            columns["e_unit"].append(unit_code)
            columns["e_phase"].append(phase)
            columns["e_effective_at"].append(new.effective_at)
    parameters.update(columns)
    ordered = sorted(deltas.items())
    parameters["d_account"] = [account_id for account_id, _ in ordered]
    parameters["d_debits_posted"] = [delta.debits_posted for _, delta in ordered]
    parameters["d_credits_posted"] = [delta.credits_posted for _, delta in ordered]
    parameters["d_debits_pending"] = [delta.debits_pending for _, delta in ordered]
    parameters["d_credits_pending"] = [delta.credits_pending for _, delta in ordered]
    rows = connection.execute(_WRITE_TRANSACTIONS, parameters, prepare=True).fetchall()
    if len(rows) != len(transactions):
        return None
    return {row[0]: row[1] for row in rows}


def balance_delta(before: Balances, after: Balances) -> BalanceDelta:
    return BalanceDelta(
        debits_posted=after.debits_posted - before.debits_posted,
        credits_posted=after.credits_posted - before.credits_posted,
        debits_pending=after.debits_pending - before.debits_pending,
        credits_pending=after.credits_pending - before.credits_pending,
    )


ACCOUNT_CODE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_\-]+)*$")


def find_account_by_identity(
    connection: psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    code: str,
    unit_code: str,
    customer_id: str | None,
) -> AccountRow | None:
    row = connection.execute(
        f"""SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts
            WHERE tenant_id = %s AND code = %s AND unit_code = %s AND coalesce(customer_id, '') = coalesce(%s, '')""",
        (tenant_id, code, unit_code, customer_id),
    ).fetchone()
    return AccountRow(*row) if row else None


def transactions_by_ids(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, transaction_ids: Sequence[uuid.UUID]
) -> list[TransactionRow]:
    """The transactions with their entries, in the order of `transaction_ids`."""
    if not transaction_ids:
        return []
    found = _transactions_with_entries(
        connection, "tenant_id = %s AND id = ANY(%s)", (tenant_id, list(transaction_ids))
    )
    by_id = {row.id: row for row in found}
    return [by_id[transaction_id] for transaction_id in transaction_ids if transaction_id in by_id]
