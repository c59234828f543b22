"""Read the ledger: accounts, transactions, entries, and balances (current or as of a time)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine

from tally.adapters.pagination import Page, PageRequest
from tally.adapters.postgres import ledger as store
from tally.adapters.postgres.connections import psycopg_transaction
from tally.core.ledger.model import Balances, Direction
from tally.core.rejections import InvariantViolation, Rejected

T = TypeVar("T")
LedgerEntry = store.EntryRow


@dataclass(frozen=True, slots=True)
class AccountBalance:
    account_id: uuid.UUID
    unit_code: str
    normal_balance: Direction
    as_of: datetime | None
    balances: Balances

    @property
    def posted(self) -> int:
        return self.balances.posted(self.normal_balance)

    @property
    def pending(self) -> int:
        return self.balances.pending(self.normal_balance)

    @property
    def available(self) -> int:
        return self.balances.available(self.normal_balance)


def get_account(engine: Engine, tenant_id: uuid.UUID, account_id: uuid.UUID | None) -> store.AccountRow:
    row = None
    if account_id is not None:
        with psycopg_transaction(engine) as connection:
            row = store.fetch_accounts(connection, tenant_id, [account_id]).get(account_id)
    if row is None:
        raise Rejected.because("account_not_found", "no such account for this tenant", "account_id")
    return row


def get_transaction(engine: Engine, tenant_id: uuid.UUID, transaction_id: uuid.UUID | None) -> store.TransactionRow:
    row = None
    if transaction_id is not None:
        with psycopg_transaction(engine) as connection:
            row = store.get_transaction(connection, tenant_id, transaction_id)
    if row is None:
        raise Rejected.because("transaction_not_found", "no such transaction for this tenant", "transaction_id")
    return row


def account_balance(
    engine: Engine, tenant_id: uuid.UUID, account_id: uuid.UUID | None, as_of: datetime | None = None
) -> AccountBalance:
    """The current balance from the cached counters, or the balance as of an effective time from entries.

    As of time T: posted entries effective at or before T; pending transactions effective at or
    before T that no resolution effective at or before T had resolved yet.
    """
    account = get_account(engine, tenant_id, account_id)
    if as_of is None:
        balances = account.to_core().balances
    else:
        if as_of.tzinfo is None:
            raise Rejected.because("as_of_must_have_timezone", "as_of needs a UTC offset", "as_of")
        with psycopg_transaction(engine) as connection:
            row = connection.execute(_BALANCE_AS_OF, {"account_id": account.id, "as_of": as_of}).fetchone()
        if row is None:
            raise InvariantViolation("a balance query answers one row")
        balances = Balances(*(int(value) for value in row))
    return AccountBalance(account.id, account.unit_code, Direction(account.normal_balance), as_of, balances)


_BALANCE_AS_OF = """
SELECT
    coalesce(sum(e.amount) FILTER (WHERE e.phase = 'posted' AND e.direction = 'debit'), 0),
    coalesce(sum(e.amount) FILTER (WHERE e.phase = 'posted' AND e.direction = 'credit'), 0),
    coalesce(sum(e.amount) FILTER (WHERE e.phase = 'pending' AND e.direction = 'debit' AND r.id IS NULL), 0),
    coalesce(sum(e.amount) FILTER (WHERE e.phase = 'pending' AND e.direction = 'credit' AND r.id IS NULL), 0)
FROM ledger_entries e
LEFT JOIN ledger_transactions r
       ON e.phase = 'pending' AND r.pending_transaction_id = e.transaction_id AND r.effective_at <= %(as_of)s
WHERE e.account_id = %(account_id)s AND e.effective_at <= %(as_of)s
"""


@dataclass(frozen=True, slots=True)
class BalanceGroup:
    key: dict[str, Any]
    unit_code: str
    account_count: int
    balances: Balances
    normal_balance: Direction | None  # set when the group has one normal balance


GROUPINGS = ("type", "code", "customer", "owner")


def aggregated_balances(
    engine: Engine,
    tenant_id: uuid.UUID,
    group_by: list[str],
    *,
    account_type: str | None = None,
    customer_id: str | None = None,
    unit_code: str | None = None,
) -> list[BalanceGroup]:
    """Sums of current balances grouped by type, code, customer or owner, always per unit."""
    for name in group_by:
        if name not in GROUPINGS:
            raise Rejected.because("group_by_must_be_known", f"group_by is one of {', '.join(GROUPINGS)}", "group_by")
    expressions = {
        "type": "type",
        "code": "code",
        "customer": "customer_id",
        "owner": "CASE WHEN customer_id IS NULL THEN 'platform' ELSE 'customer' END",
    }
    selected = [f"{expressions[name]} AS {name}" for name in group_by]
    grouped = [expressions[name] for name in group_by]
    filters = ["tenant_id = %(tenant_id)s"]
    parameters: dict[str, Any] = {"tenant_id": tenant_id}
    if account_type is not None:
        filters.append("type = %(type)s")
        parameters["type"] = account_type
    if customer_id is not None:
        filters.append("customer_id = %(customer_id)s")
        parameters["customer_id"] = customer_id
    if unit_code is not None:
        filters.append("unit_code = %(unit_code)s")
        parameters["unit_code"] = unit_code
    query = f"""
        SELECT {", ".join([*selected, "unit_code"])}, count(*), sum(debits_posted), sum(credits_posted),
               sum(debits_pending), sum(credits_pending), min(normal_balance), max(normal_balance)
        FROM ledger_accounts WHERE {" AND ".join(filters)}
        GROUP BY {", ".join([*grouped, "unit_code"])}
        ORDER BY {", ".join([*grouped, "unit_code"])}
        LIMIT 10000"""
    with psycopg_transaction(engine) as connection:
        rows = connection.execute(query, parameters).fetchall()
    groups = []
    width = len(group_by)
    for row in rows:
        low, high = row[width + 6], row[width + 7]
        groups.append(
            BalanceGroup(
                key=dict(zip(group_by, row[:width], strict=True)),
                unit_code=row[width],
                account_count=row[width + 1],
                balances=Balances(*(int(value) for value in row[width + 2 : width + 6])),
                normal_balance=Direction(low) if low == high else None,
            )
        )
    return groups


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryFilter:
    account_id: uuid.UUID | None = None
    transaction_id: uuid.UUID | None = None
    customer_id: str | None = None
    unit_code: str | None = None
    effective_from: datetime | None = None  # inclusive
    effective_to: datetime | None = None  # exclusive
    phase: str | None = None


def _page_query(select: str, filters: list[str], parameters: dict[str, Any], page: PageRequest, id_column: str) -> str:
    """Keyset pagination in id order (oldest first): the cursor condition, the order, one extra row."""
    if page.starting_after is not None:
        filters.append(f"{id_column} > %(starting_after)s")
        parameters["starting_after"] = page.starting_after
    if page.ending_before is not None:
        filters.append(f"{id_column} < %(ending_before)s")
        parameters["ending_before"] = page.ending_before
    parameters["limit"] = page.limit + 1
    order = "DESC" if page.backwards else "ASC"
    return f"{select} WHERE {' AND '.join(filters)} ORDER BY {id_column} {order} LIMIT %(limit)s"


def _page(rows: list[T], page: PageRequest) -> Page[T]:
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    if page.backwards:
        rows.reverse()
    return Page(items=rows, has_more=has_more, backwards=page.backwards)


def list_entries(
    engine: Engine, tenant_id: uuid.UUID, entry_filter: EntryFilter, page: PageRequest | None = None
) -> Page[store.EntryRow]:
    """Entries in id (creation) order, filtered."""
    page = page or PageRequest()
    filters = ["e.tenant_id = %(tenant_id)s"]
    parameters: dict[str, Any] = {"tenant_id": tenant_id}
    conditions = {
        "account_id": "e.account_id = %(account_id)s",
        "transaction_id": "e.transaction_id = %(transaction_id)s",
        "customer_id": "a.customer_id = %(customer_id)s",
        "unit_code": "e.unit_code = %(unit_code)s",
        "effective_from": "e.effective_at >= %(effective_from)s",
        "effective_to": "e.effective_at < %(effective_to)s",
        "phase": "e.phase = %(phase)s",
    }
    for name, condition in conditions.items():
        value = getattr(entry_filter, name)
        if value is not None:
            filters.append(condition)
            parameters[name] = value
    join = "JOIN ledger_transactions t ON t.id = e.transaction_id"
    if entry_filter.customer_id is not None:
        join += " JOIN ledger_accounts a ON a.id = e.account_id"
    columns = ", ".join(f"e.{column.strip()}" for column in store.ENTRY_COLUMNS.split(","))
    query = _page_query(
        f"SELECT {columns}, t.recorded_at FROM ledger_entries e {join}", filters, parameters, page, "e.id"
    )
    with psycopg_transaction(engine) as connection:
        rows = [store.EntryRow(*row) for row in connection.execute(query, parameters).fetchall()]
    return _page(rows, page)


def list_accounts(
    engine: Engine,
    tenant_id: uuid.UUID,
    *,
    customer_id: str | None = None,
    code: str | None = None,
    unit_code: str | None = None,
    page: PageRequest | None = None,
) -> Page[store.AccountRow]:
    page = page or PageRequest()
    filters = ["tenant_id = %(tenant_id)s"]
    parameters: dict[str, Any] = {"tenant_id": tenant_id}
    for name, value in (("customer_id", customer_id), ("code", code), ("unit_code", unit_code)):
        if value is not None:
            filters.append(f"{name} = %({name})s")
            parameters[name] = value
    query = _page_query(f"SELECT {store.ACCOUNT_COLUMNS} FROM ledger_accounts", filters, parameters, page, "id")
    with psycopg_transaction(engine) as connection:
        rows = [store.AccountRow(*row) for row in connection.execute(query, parameters).fetchall()]
    return _page(rows, page)


def list_transactions(
    engine: Engine,
    tenant_id: uuid.UUID,
    *,
    reference: str | None = None,
    page: PageRequest | None = None,
) -> Page[store.TransactionRow]:
    page = page or PageRequest()
    filters = ["tenant_id = %(tenant_id)s"]
    parameters: dict[str, Any] = {"tenant_id": tenant_id}
    if reference is not None:
        filters.append("reference = %(reference)s")
        parameters["reference"] = reference
    query = _page_query("SELECT id FROM ledger_transactions", filters, parameters, page, "id")
    with psycopg_transaction(engine) as connection:
        ids = [row[0] for row in connection.execute(query, parameters).fetchall()]
        found = _page(ids, page)
        rows = store.transactions_by_ids(connection, tenant_id, list(found.items))
    return Page(items=rows, has_more=found.has_more, backwards=found.backwards)
