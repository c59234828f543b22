"""The ledger's PostgreSQL side: row ↔ core values, account locks, and the write statements.

Hot paths use the psycopg connection underneath SQLAlchemy directly: a statement to look up the
idempotency keys, one to lock the accounts, then one that inserts the transactions and their
entries and moves the cached balances together (data-modifying CTEs, with the rows passed as JSON
documents). All three are prepared once per connection and keep their generic plan.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring_ascii
from typing import Any, NamedTuple

import psycopg

from tally.core.ledger.model import (
    Account,
    Balances,
    Direction,
    Entry,
    TransactionKind,
    TransactionSpec,
)
from tally.core.rejections import InvariantViolation


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


# Parameters in `(SELECT %s::type)` are hidden from the planner on purpose (see _TENANT_PARAMETER).
# FOR NO KEY UPDATE: balances are not keys, so inserting entries (whose foreign keys take key-share
# locks on their accounts) never waits for a writer of balances.
_LOCK_ACCOUNTS = f"""
SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts
WHERE tenant_id = (SELECT %s::uuid) AND id = ANY((SELECT %s::uuid[])::uuid[])
ORDER BY id FOR NO KEY UPDATE"""


def lock_accounts(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, account_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, AccountRow]:
    """Lock the tenant's accounts among `account_ids` in id order (one global order: no deadlocks).

    The statement's ORDER BY sets the order the rows are locked in, whatever the order of the ids.
    """
    rows = connection.execute(_LOCK_ACCOUNTS, (tenant_id, list(set(account_ids))), binary=True).fetchall()
    return {row[0]: AccountRow(*row) for row in rows}


def fetch_accounts(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, account_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, AccountRow]:
    rows = connection.execute(
        f"SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE tenant_id = %s AND id = ANY(%s)",
        (tenant_id, list(set(account_ids))),
    ).fetchall()
    return {row[0]: AccountRow(*row) for row in rows}


_TRANSACTION_FIELDS = len(TRANSACTION_COLUMNS.split(","))


def _transactions_query(where: str) -> str:
    """Transactions matching `where`, each with its entries: one row per entry (one row, with no
    entry, for a void), ordered by transaction then entry index."""
    transaction_columns = ", ".join(f"t.{column.strip()}" for column in TRANSACTION_COLUMNS.split(","))
    entry_columns = ", ".join(f"e.{column.strip()}" for column in ENTRY_COLUMNS.split(","))
    return f"""
        SELECT {transaction_columns}, {entry_columns}
        FROM (SELECT {TRANSACTION_COLUMNS} FROM ledger_transactions WHERE {where}) AS t
        LEFT JOIN ledger_entries e ON e.transaction_id = t.id
        ORDER BY t.id, e.entry_index"""


def _transactions_from_rows(rows: Sequence[Sequence[Any]]) -> list[TransactionRow]:
    grouped: dict[uuid.UUID, tuple[Sequence[Any], list[EntryRow]]] = {}
    for row in rows:
        header, entry = row[:_TRANSACTION_FIELDS], row[_TRANSACTION_FIELDS:]
        _, entries = grouped.setdefault(header[0], (header, []))
        if entry[0] is not None:
            entries.append(EntryRow(*entry))
    return [_transaction_row(header, tuple(entries)) for header, entries in grouped.values()]


def _transactions_with_entries(
    connection: psycopg.Connection[Any], where: str, parameters: Sequence[Any]
) -> list[TransactionRow]:
    return _transactions_from_rows(connection.execute(_transactions_query(where), parameters).fetchall())


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


# Parameters wrapped in `(SELECT %s::type)` are hidden from the planner on purpose, for two reasons.
# 1. With a plain `tenant_id = %s`, a tenant the statistics have not seen yet (a new one, or one that
#    grew since the last ANALYZE) is estimated at one row, and the planner picks the narrower
#    (tenant_id, id) index and filters: every key lookup then reads all of the tenant's
#    transactions. Estimated for an average tenant instead, the lookup goes through the unique
#    index that answers it in one probe per key.
# 2. A prepared statement whose custom plan (made for the exact values) looks cheaper than its
#    generic plan is re-planned at every execution, and planning these statements costs more than
#    running them. With the values hidden, both plans cost the same and the generic one is kept.
_TENANT_PARAMETER = "tenant_id = (SELECT %s::uuid)"
_FIND_BY_KEYS = _transactions_query(f"{_TENANT_PARAMETER} AND idempotency_key = ANY((SELECT %s::text[])::text[])")


def find_transactions_by_keys(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, keys: Sequence[str]
) -> dict[str, TransactionRow]:
    rows = connection.execute(_FIND_BY_KEYS, (tenant_id, list(keys)), binary=True).fetchall()
    return {row.idempotency_key: row for row in _transactions_from_rows(rows)}


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
    """A validated transaction ready to write."""

    id: uuid.UUID
    spec: TransactionSpec
    effective_at: datetime
    unit_codes: tuple[str, ...]  # one per entry, in entry order
    entry_ids: tuple[uuid.UUID, ...]
    account_ids: tuple[uuid.UUID, ...]  # the entries' `account_id`s, parsed


@dataclass(frozen=True, slots=True)
class BalanceDelta:
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0


# Plain inserts: a key (or a resolution, or a reversal) taken by a concurrent writer fails the whole
# statement with a unique violation, so nothing is half written and the caller retries. The rows
# come as three JSON documents: one parameter each, however many rows (psycopg dumps long or many
# arrays at a cost higher than the statement's own).
_WRITE_TRANSACTIONS = """
WITH input AS MATERIALIZED (
    SELECT * FROM json_to_recordset(%(transactions)s::json) AS t(
        id uuid, idempotency_key text, kind text, template text, effective_at timestamptz, description text,
        reference text, metadata jsonb, pending_transaction_id uuid, reverses_transaction_id uuid, entry_count int2)
), new_transactions AS (
    INSERT INTO ledger_transactions (
        id, tenant_id, idempotency_key, kind, template, effective_at, description, reference, metadata,
        pending_transaction_id, reverses_transaction_id, entry_count)
    SELECT id, %(tenant_id)s, idempotency_key, kind, template, effective_at, description, reference, metadata,
           pending_transaction_id, reverses_transaction_id, entry_count
    FROM input
    RETURNING id, recorded_at
), new_entries AS (
    INSERT INTO ledger_entries (
        id, tenant_id, transaction_id, entry_index, account_id, direction, amount, unit_code, phase, effective_at)
    SELECT e.id, %(tenant_id)s, e.transaction_id, e.entry_index, e.account_id, e.direction, e.amount, e.unit_code,
           CASE t.kind WHEN 'pending' THEN 'pending' ELSE 'posted' END, t.effective_at
    FROM json_to_recordset(%(entries)s::json) AS e(
        id uuid, transaction_id uuid, entry_index int2, account_id uuid, direction text, amount int8, unit_code text)
    JOIN input t ON t.id = e.transaction_id
), moved AS (
    UPDATE ledger_accounts AS a
    SET debits_posted = a.debits_posted + d.debits_posted,
        credits_posted = a.credits_posted + d.credits_posted,
        debits_pending = a.debits_pending + d.debits_pending,
        credits_pending = a.credits_pending + d.credits_pending
    FROM json_to_recordset(%(deltas)s::json) AS d(
        account_id uuid, debits_posted int8, credits_posted int8, debits_pending int8, credits_pending int8)
    WHERE a.id = d.account_id
)
SELECT id, recorded_at FROM new_transactions
"""


def _rows(transactions: Sequence[NewTransaction]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The transactions and their entries as rows for the write statements' JSON documents."""
    transaction_rows = []
    entry_rows = []
    for new in transactions:
        spec = new.spec
        transaction_id = str(new.id)
        transaction_rows.append(
            {
                "id": transaction_id,
                "idempotency_key": spec.idempotency_key,
                "kind": spec.kind.value,
                "template": spec.template,
                "effective_at": new.effective_at.isoformat(),
                "description": spec.description,
                "reference": spec.reference,
                "metadata": spec.metadata,
                "pending_transaction_id": spec.pending_transaction_id,
                "reverses_transaction_id": spec.reverses_transaction_id,
                "entry_count": len(spec.entries),
            }
        )
        for index, (entry, unit_code, entry_id) in enumerate(
            zip(spec.entries, new.unit_codes, new.entry_ids, strict=True)
        ):
            entry_rows.append(
                {
                    "id": str(entry_id),
                    "transaction_id": transaction_id,
                    "entry_index": index,
                    "account_id": entry.account_id,  # an account's id as text, as the core has it
                    "direction": entry.direction.value,
                    "amount": entry.amount,
                    "unit_code": unit_code,
                }
            )
    return transaction_rows, entry_rows


def write_transactions(
    connection: psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    transactions: Sequence[NewTransaction],
    deltas: Mapping[uuid.UUID, BalanceDelta],
) -> dict[uuid.UUID, datetime]:
    """Insert the transactions and entries and move the balances, all in one statement; return each
    new transaction's `recorded_at`.

    The caller holds the account locks. Raises `psycopg.errors.UniqueViolation` when a concurrent
    writer took one of the idempotency keys (or resolved or reversed the same transaction) first:
    then nothing was written, and a retry finds what the other writer wrote.
    """
    transaction_rows, entry_rows = _rows(transactions)
    delta_rows = [
        {
            "account_id": str(account_id),
            "debits_posted": delta.debits_posted,
            "credits_posted": delta.credits_posted,
            "debits_pending": delta.debits_pending,
            "credits_pending": delta.credits_pending,
        }
        for account_id, delta in deltas.items()  # no order needed: the caller holds every row's lock
    ]
    parameters = {
        "tenant_id": tenant_id,
        "transactions": json.dumps(transaction_rows, separators=(",", ":")),
        "entries": json.dumps(entry_rows, separators=(",", ":")),
        "deltas": json.dumps(delta_rows, separators=(",", ":")),
    }
    rows = connection.execute(_WRITE_TRANSACTIONS, parameters, prepare=True).fetchall()
    if len(rows) != len(transactions):
        raise InvariantViolation(f"wrote {len(rows)} of {len(transactions)} transactions")
    return {row[0]: row[1] for row in rows}


@dataclass(frozen=True, slots=True)
class AccountStatic:
    """What never changes about an account: enough to check a transaction before taking any lock."""

    unit_code: str
    normal_balance: str
    minimum_balance: int | None


def account_statics(
    connection: psycopg.Connection[Any], tenant_id: uuid.UUID, account_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, AccountStatic]:
    rows = connection.execute(
        f"""SELECT id, unit_code, normal_balance, minimum_balance FROM ledger_accounts
            WHERE {_TENANT_PARAMETER} AND id = ANY((SELECT %s::uuid[])::uuid[])""",
        (tenant_id, list(set(account_ids))),
        binary=True,
        prepare=True,
    ).fetchall()
    return {row[0]: AccountStatic(row[1], row[2], row[3]) for row in rows}


# A whole batch at once, in one pipeline that is one database transaction:
#   1. insert the transactions and entries (their foreign key checks take only key-share locks on
#      the accounts, which do not wait for writers of balances);
#   2. lock the accounts in id order (FOR NO KEY UPDATE: balances are not keys);
#   3. move the balances only if every account is what the caller assumed (tenant, unit, normal
#      balance) and every floor holds at the batch's lowest point; otherwise call
#      `ledger_refuse_batch()`, which raises, so that the transaction rolls back whole.
# Only steps 2 and 3 run under the account locks, and no lock is held across a round trip. Step 3
# is a statement of its own: under READ COMMITTED its snapshot, taken once the locks are held, shows
# the accounts as the last writer left them. (Rows locked by a CTE of the statement that checks them
# can come back as that statement's snapshot saw them, before a concurrent writer committed.)
_INSERT_TRANSACTIONS = """
WITH input AS MATERIALIZED (
    SELECT * FROM json_to_recordset(%(transactions)s::json) AS t(
        id uuid, idempotency_key text, kind text, template text, effective_at timestamptz, description text,
        reference text, metadata jsonb, entry_count int2)
), new_transactions AS (
    INSERT INTO ledger_transactions (
        id, tenant_id, idempotency_key, kind, template, effective_at, description, reference, metadata, entry_count)
    SELECT id, %(tenant_id)s, idempotency_key, kind, template, effective_at, description, reference, metadata,
           entry_count
    FROM input
    RETURNING id, recorded_at
), new_entries AS (
    INSERT INTO ledger_entries (
        id, tenant_id, transaction_id, entry_index, account_id, direction, amount, unit_code, phase, effective_at)
    SELECT e.id, %(tenant_id)s, e.transaction_id, e.entry_index, e.account_id, e.direction, e.amount, e.unit_code,
           CASE t.kind WHEN 'pending' THEN 'pending' ELSE 'posted' END, t.effective_at
    FROM json_to_recordset(%(entries)s::json) AS e(
        id uuid, transaction_id uuid, entry_index int2, account_id uuid, direction text, amount int8, unit_code text)
    JOIN input t ON t.id = e.transaction_id
)
SELECT id::text, recorded_at FROM new_transactions
"""

_LOCK_FOR_BALANCES = """
SELECT FROM ledger_accounts
WHERE tenant_id = (SELECT %s::uuid) AND id = ANY((SELECT %s::uuid[])::uuid[])
ORDER BY id FOR NO KEY UPDATE"""

_MOVE_IF_FLOORS_HOLD = """
WITH moves AS MATERIALIZED (
    SELECT * FROM json_to_recordset(%(moves)s::json) AS m(
        account_id uuid, unit_code text, normal_balance text, debits_posted int8, credits_posted int8,
        debits_pending int8, credits_pending int8, available_change_lowest int8)
), accounts AS MATERIALIZED (
    SELECT a.id, a.unit_code, a.normal_balance, a.minimum_balance,
           CASE a.normal_balance WHEN 'debit' THEN a.debits_posted - a.credits_posted - a.credits_pending
                ELSE a.credits_posted - a.debits_posted - a.debits_pending END AS available
    FROM ledger_accounts a
    WHERE a.tenant_id = (SELECT %(tenant_id)s::uuid) AND a.id = ANY((SELECT %(account_ids)s::uuid[])::uuid[])
), verdict AS MATERIALIZED (
    SELECT (SELECT count(*) FROM accounts a JOIN moves m
                ON m.account_id = a.id AND m.unit_code = a.unit_code AND m.normal_balance = a.normal_balance)
               = (SELECT count(*) FROM moves)
           AND NOT EXISTS (SELECT FROM accounts a JOIN moves m ON m.account_id = a.id
                           WHERE a.minimum_balance IS NOT NULL
                             AND a.available + m.available_change_lowest < a.minimum_balance) AS moves
), moved AS (
    UPDATE ledger_accounts AS a
    SET debits_posted = a.debits_posted + m.debits_posted,
        credits_posted = a.credits_posted + m.credits_posted,
        debits_pending = a.debits_pending + m.debits_pending,
        credits_pending = a.credits_pending + m.credits_pending
    FROM moves m
    WHERE a.tenant_id = (SELECT %(tenant_id)s::uuid) AND a.id = ANY((SELECT %(account_ids)s::uuid[])::uuid[])
      AND a.id = m.account_id AND (SELECT moves FROM verdict)
)
SELECT CASE WHEN moves THEN true ELSE ledger_refuse_batch() END FROM verdict
"""

# SQLSTATE raised by `ledger_refuse_batch()` (migration 0006).
BATCH_REFUSED = "TL001"


@dataclass(frozen=True, slots=True)
class AccountMove:
    """One account's part in a batch written at once: the counters' change, the lowest its
    available balance may get relative to the start, and what the caller assumed of the account."""

    delta: Balances
    available_change_lowest: int
    unit_code: str
    normal_balance: str


class BatchTransaction(NamedTuple):
    """A `posted` or `pending` transaction of a batch written at once, with its ids as canonical text.

    A named tuple rather than a frozen dataclass: a batch makes a thousand of them, and a tuple is
    built several times faster."""

    id: str
    spec: TransactionSpec
    effective_at: datetime
    entry_ids: Sequence[str]
    account_ids: Sequence[str]  # the entries' accounts' ids, canonical text
    unit_codes: Sequence[str]  # the entries' accounts' units


def write_if_floors_hold(
    connection: psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    transactions: Sequence[BatchTransaction],
    moves: Mapping[str, AccountMove],
) -> dict[str, datetime] | None:
    """Write a batch of `posted`/`pending` transactions if every account's floor holds at the
    batch's lowest point; else write nothing and return None. Returns each transaction's
    `recorded_at` by id. `moves` are by account id (canonical text).

    `connection` must be in autocommit mode and idle: the statements go in one pipeline and one
    sync, which makes them one implicit transaction. Raises `psycopg.errors.UniqueViolation` when
    an idempotency key is taken (nothing written).
    """
    account_ids = "{" + ",".join(moves) + "}"
    parameters = {
        "tenant_id": tenant_id,
        "account_ids": account_ids,
        "moves": _moves_document(moves),
        **_batch_documents(transactions),
    }
    try:
        with connection.pipeline() as pipeline:
            inserted = connection.execute(_INSERT_TRANSACTIONS, parameters, prepare=True)
            connection.execute(_LOCK_FOR_BALANCES, (tenant_id, account_ids), prepare=True)
            connection.execute(_MOVE_IF_FLOORS_HOLD, parameters, prepare=True)
            pipeline.sync()
            rows = inserted.fetchall()
    except psycopg.Error as error:
        if error.sqlstate == BATCH_REFUSED:
            return None
        raise
    if len(rows) != len(transactions):
        raise InvariantViolation(f"wrote {len(rows)} of {len(transactions)} transactions")
    return {row[0]: row[1] for row in rows}


# The batch documents are written out directly rather than through `json.dumps` of dicts: a batch
# of a thousand transfers is about four thousand small objects, and building and encoding dicts for
# them cost more than the database's own work. Texts from outside go through the JSON string
# encoder; ids, enum values, integers and unit codes need no escaping.
_quote = encode_basestring_ascii


def _batch_documents(transactions: Sequence[BatchTransaction]) -> dict[str, str]:
    transaction_parts = []
    entry_parts = []
    effective_texts: dict[datetime, str] = {}
    for new in transactions:
        spec = new.spec
        effective_at = effective_texts.get(new.effective_at)
        if effective_at is None:
            effective_at = effective_texts[new.effective_at] = new.effective_at.isoformat()
        transaction_parts.append(
            f'{{"id":"{new.id}","idempotency_key":{_quote(spec.idempotency_key)},"kind":"{spec.kind.value}",'
            f'"template":{_quote(spec.template)},"effective_at":"{effective_at}",'
            f'"description":{_quote(spec.description)},'
            f'"reference":{"null" if spec.reference is None else _quote(spec.reference)},'
            f'"metadata":{json.dumps(spec.metadata, separators=(",", ":")) if spec.metadata else "{}"},'
            f'"entry_count":{len(spec.entries)}}}'
        )
        for index, entry in enumerate(spec.entries):
            entry_parts.append(
                f'{{"id":"{new.entry_ids[index]}","transaction_id":"{new.id}","entry_index":{index},'
                f'"account_id":"{new.account_ids[index]}","direction":"{entry.direction.value}",'
                f'"amount":{entry.amount},"unit_code":{_quote(new.unit_codes[index])}}}'
            )
    return {"transactions": f"[{','.join(transaction_parts)}]", "entries": f"[{','.join(entry_parts)}]"}


def _moves_document(moves: Mapping[str, AccountMove]) -> str:
    parts = [
        f'{{"account_id":"{account_id}","unit_code":{_quote(move.unit_code)},'
        f'"normal_balance":"{move.normal_balance}","debits_posted":{move.delta.debits_posted},'
        f'"credits_posted":{move.delta.credits_posted},"debits_pending":{move.delta.debits_pending},'
        f'"credits_pending":{move.delta.credits_pending},"available_change_lowest":{move.available_change_lowest}}}'
        for account_id, move in moves.items()
    ]
    return f"[{','.join(parts)}]"


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
            WHERE {_TENANT_PARAMETER} AND code = %s AND unit_code = %s
                  AND coalesce(customer_id, '') = coalesce(%s, '')""",
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
