"""`tally ledger …`: accounts, postings, reversals, balances and entries from the command line.

Amounts are integers of the unit's smallest part (`1250` USD cents) or exact decimals in major units
(`12.50`); a decimal with more digits than the unit allows is refused, never rounded.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from tally.adapters import ids
from tally.adapters.pagination import LIMIT_MAX, PageRequest
from tally.app.check_ledger_integrity import run_integrity_check
from tally.app.ledger_accounts import AccountInput, create_account
from tally.app.ledger_queries import EntryFilter, account_balance, aggregated_balances, get_transaction, list_entries
from tally.app.post_ledger_transactions import EntryInput, TransactionInput, post_batch, post_transaction
from tally.app.resolve_pending_transaction import ResolutionInput, resolve_pending_transaction
from tally.app.reverse_ledger_transaction import ReversalInput, reverse_transaction
from tally.cli._context import audit, console, fail, open_tally, rejections_as_errors, resolve_tenant
from tally.core.ledger.model import AccountType, Direction

app = typer.Typer(help="The double-entry ledger.", no_args_is_help=True)
accounts_app = typer.Typer(help="Ledger accounts.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")

TenantOption = typer.Option(None, "--tenant", envvar="TALLY_TENANT", help="Tenant id or name.")


def _account_id(text: str) -> uuid.UUID | None:
    return ids.parse_id(ids.ACCOUNT, text)


def _transaction_id(text: str) -> uuid.UUID | None:
    return ids.parse_id(ids.TRANSACTION, text)


def _entry(side: str, direction: Direction) -> EntryInput:
    account, separator, amount = side.partition("=")
    if not separator:
        fail("entry_must_be_account_equals_amount", f"{side!r}: write ACCOUNT_ID=AMOUNT")
    try:
        value = Decimal(amount)
    except InvalidOperation:
        fail("amount_must_be_a_number", f"{amount!r} is not a number")
    if "." in amount or "e" in amount.lower():
        return EntryInput(account_id=_account_id(account), direction=direction, amount_decimal=value)
    return EntryInput(account_id=_account_id(account), direction=direction, amount=int(value))


def _print_transaction(transaction: Any, replayed: bool = False) -> None:
    table = Table(
        title=f"{ids.format_id(ids.TRANSACTION, transaction.id)} ({transaction.kind})"
        + (" — replayed" if replayed else "")
    )
    for column in ("#", "account", "direction", "amount", "unit"):
        table.add_column(column)
    for entry in transaction.entries:
        table.add_row(
            str(entry.entry_index),
            ids.format_id(ids.ACCOUNT, entry.account_id),
            entry.direction,
            f"{entry.amount:,}",
            entry.unit_code,
        )
    console.print(table)
    console.print(f"effective_at {transaction.effective_at.isoformat()}  key {transaction.idempotency_key!r}")


@accounts_app.command("create")
def accounts_create(
    code: str = typer.Argument(..., help="Chart code (customer_credit, revenue.api, …) or a custom code."),
    unit: str = typer.Option(..., "--unit", help="ISO 4217 currency or a custom unit."),
    customer: str | None = typer.Option(None, "--customer", help="The customer, for customer accounts."),
    account_type: AccountType | None = typer.Option(None, "--type", help="Required for custom codes."),
    normal_balance: Direction | None = typer.Option(None, "--normal-balance"),
    minimum_balance: int | None = typer.Option(None, "--minimum-balance", help="Floor for the available balance."),
    name: str | None = typer.Option(None, "--name"),
    tenant: str | None = TenantOption,
) -> None:
    """Create an account (or return the existing one with the same code, unit and customer)."""
    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        account, created = create_account(
            tally.engine,
            tenant_id,
            AccountInput(
                code=code,
                unit_code=unit,
                customer_id=customer,
                type=account_type,
                normal_balance=normal_balance,
                minimum_balance=minimum_balance,
                name=name,
            ),
        )
        account_id = ids.format_id(ids.ACCOUNT, account.id)
        if created:
            audit(tally, tenant_id, "tally ledger accounts create", "ledger_account", account_id)
        console.print(f"{'created' if created else 'exists'}: {account_id}", highlight=False)


@accounts_app.command("list")
def accounts_list(
    customer: str | None = typer.Option(None, "--customer"),
    unit: str | None = typer.Option(None, "--unit"),
    tenant: str | None = TenantOption,
) -> None:
    """Accounts with their posted and available balances."""
    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        from tally.app.ledger_queries import list_accounts

        table = Table(title="Ledger accounts")
        for column in ("id", "code", "customer", "unit", "posted", "pending", "available"):
            table.add_column(column)
        cursor: uuid.UUID | None = None
        while True:
            found = list_accounts(
                tally.engine,
                tenant_id,
                customer_id=customer,
                unit_code=unit,
                page=PageRequest(limit=LIMIT_MAX, starting_after=cursor),
            )
            rows = list(found.items)
            for row in rows:
                balances = row.to_core().balances
                normal = Direction(row.normal_balance)
                table.add_row(
                    ids.format_id(ids.ACCOUNT, row.id),
                    row.code,
                    row.customer_id or "—",
                    row.unit_code,
                    f"{balances.posted(normal):,}",
                    f"{balances.pending(normal):,}",
                    f"{balances.available(normal):,}",
                )
            if not found.has_more or not rows:
                break
            cursor = rows[-1].id
        console.print(table)


@app.command("post")
def post(
    key: str = typer.Option(..., "--key", help="Idempotency key: the same key never posts twice."),
    debit: list[str] = typer.Option(..., "--debit", help="ACCOUNT_ID=AMOUNT (repeatable)."),
    credit: list[str] = typer.Option(..., "--credit", help="ACCOUNT_ID=AMOUNT (repeatable)."),
    pending: bool = typer.Option(False, "--pending", help="Reserve now; post or void later."),
    description: str = typer.Option("", "--description"),
    reference: str | None = typer.Option(None, "--reference"),
    effective_at: datetime | None = typer.Option(None, "--effective-at", help="Business time (ISO 8601, with offset)."),
    tenant: str | None = TenantOption,
) -> None:
    """Post one balanced transaction."""
    entries = tuple(_entry(side, Direction.DEBIT) for side in debit) + tuple(
        _entry(side, Direction.CREDIT) for side in credit
    )
    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        outcome = post_transaction(
            tally.engine,
            tally.clock,
            tenant_id,
            TransactionInput(
                idempotency_key=key,
                entries=entries,
                pending=pending,
                effective_at=effective_at,
                description=description,
                reference=reference,
            ),
        )
        _print_transaction(outcome.unwrap(), outcome.replayed)
        _audit_transaction(tally, tenant_id, "tally ledger post", outcome.unwrap(), outcome.replayed)


def _audit_transaction(tally: Any, tenant_id: uuid.UUID, action: str, transaction: Any, replayed: bool) -> None:
    if not replayed:
        audit(tally, tenant_id, action, "ledger_transaction", ids.format_id(ids.TRANSACTION, transaction.id))


@app.command("post-file")
def post_file(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSON: one transaction or a list (a batch)."),
    tenant: str | None = TenantOption,
) -> None:
    """Post transactions from a JSON file, in the API's shape; a list is posted as one batch."""
    document = json.loads(path.read_text())
    items = document if isinstance(document, list) else [document]
    transactions = []
    for item in items:
        entries = tuple(
            EntryInput(
                account_id=_account_id(str(entry["account_id"])),
                direction=Direction(entry["direction"]),
                amount=entry.get("amount"),
                amount_decimal=Decimal(str(entry["amount_decimal"])) if "amount_decimal" in entry else None,
            )
            for entry in item["entries"]
        )
        transactions.append(
            TransactionInput(
                idempotency_key=item["idempotency_key"],
                entries=entries,
                pending=bool(item.get("pending", False)),
                effective_at=datetime.fromisoformat(item["effective_at"]) if item.get("effective_at") else None,
                description=item.get("description", ""),
                reference=item.get("reference"),
                metadata=item.get("metadata", {}),
            )
        )
    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        outcomes = post_batch(tally.engine, tally.clock, tenant_id, transactions)
        for outcome in outcomes:
            if outcome.rejection is None:
                _audit_transaction(tally, tenant_id, "tally ledger post-file", outcome.unwrap(), outcome.replayed)
    table = Table(title=f"{len(outcomes)} transactions")
    for column in ("key", "result", "id / code"):
        table.add_column(column)
    failed = False
    for transaction, outcome in zip(transactions, outcomes, strict=True):
        if outcome.rejection is not None:
            failed = True
            table.add_row(transaction.idempotency_key, "[red]rejected[/red]", outcome.rejection.code)
        else:
            record = outcome.unwrap()
            result = "replayed" if outcome.replayed else "posted"
            table.add_row(transaction.idempotency_key, result, ids.format_id(ids.TRANSACTION, record.id))
    console.print(table)
    if failed:
        raise typer.Exit(1)


@app.command("resolve")
def resolve(
    transaction: str = typer.Argument(..., help="The pending transaction (txn_…)."),
    key: str = typer.Option(..., "--key"),
    void: bool = typer.Option(False, "--void", help="Release the reservation instead of posting it."),
    tenant: str | None = TenantOption,
) -> None:
    """Post a pending transaction in full, or void it."""
    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        record, replayed = resolve_pending_transaction(
            tally.engine,
            tally.clock,
            tenant_id,
            ResolutionInput(pending_transaction_id=_transaction_id(transaction), idempotency_key=key, void=void),
        )
        _print_transaction(record, replayed)
        _audit_transaction(tally, tenant_id, "tally ledger resolve", record, replayed)


@app.command("reverse")
def reverse(
    transaction: str = typer.Argument(..., help="The posted transaction (txn_…)."),
    key: str = typer.Option(..., "--key"),
    description: str = typer.Option("", "--description"),
    tenant: str | None = TenantOption,
) -> None:
    """Reverse a posted transaction (the only way to correct the ledger)."""
    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant)
        record, replayed = reverse_transaction(
            tally.engine,
            tally.clock,
            tenant_id,
            ReversalInput(transaction_id=_transaction_id(transaction), idempotency_key=key, description=description),
        )
        _print_transaction(record, replayed)
        _audit_transaction(tally, tenant_id, "tally ledger reverse", record, replayed)


@app.command("show")
def show(transaction: str = typer.Argument(...), tenant: str | None = TenantOption) -> None:
    """One transaction with its entries."""
    with open_tally() as tally, rejections_as_errors():
        _print_transaction(get_transaction(tally.engine, resolve_tenant(tally, tenant), _transaction_id(transaction)))


@app.command("balance")
def balance(
    account: str = typer.Argument(..., help="acct_…"),
    as_of: datetime | None = typer.Option(None, "--as-of", help="Balance as of this effective time."),
    tenant: str | None = TenantOption,
) -> None:
    """An account's posted, pending and available balance, now or as of a time."""
    with open_tally() as tally, rejections_as_errors():
        found = account_balance(tally.engine, resolve_tenant(tally, tenant), _account_id(account), as_of)
    console.print(
        f"{account} ({found.unit_code}, {found.normal_balance}-normal)"
        f"{' as of ' + as_of.isoformat() if as_of else ''}: "
        f"posted {found.posted:,}  pending {found.pending:,}  available {found.available:,}",
        highlight=False,
    )


@app.command("balances")
def balances(
    group_by: list[str] = typer.Option(["type"], "--group-by", help="type, code, customer or owner (repeatable)."),
    customer: str | None = typer.Option(None, "--customer"),
    unit: str | None = typer.Option(None, "--unit"),
    tenant: str | None = TenantOption,
) -> None:
    """Current balances summed by type, code, customer or owner — always per unit."""
    with open_tally() as tally, rejections_as_errors():
        groups = aggregated_balances(
            tally.engine, resolve_tenant(tally, tenant), group_by, customer_id=customer, unit_code=unit
        )
    table = Table(title="Balances")
    for column in (*group_by, "unit", "accounts", "debits posted", "credits posted", "pending d/c"):
        table.add_column(column)
    for group in groups:
        values = group.balances
        table.add_row(
            *(str(group.key[name] if group.key[name] is not None else "—") for name in group_by),
            group.unit_code,
            str(group.account_count),
            f"{values.debits_posted:,}",
            f"{values.credits_posted:,}",
            f"{values.debits_pending:,}/{values.credits_pending:,}",
        )
    console.print(table)


@app.command("entries")
def entries(
    account: str | None = typer.Option(None, "--account"),
    customer: str | None = typer.Option(None, "--customer"),
    limit: int = typer.Option(50, "--limit", min=1, max=100),
    tenant: str | None = TenantOption,
) -> None:
    """Entries, oldest first, filtered by account or customer."""
    with open_tally() as tally, rejections_as_errors():
        found = list_entries(
            tally.engine,
            resolve_tenant(tally, tenant),
            EntryFilter(account_id=_account_id(account) if account else None, customer_id=customer),
            PageRequest(limit=limit),
        )
    rows, has_more = found.items, found.has_more
    table = Table(title="Ledger entries" + (" (more: raise --limit or filter)" if has_more else ""))
    for column in ("effective_at", "transaction", "account", "direction", "amount", "unit", "phase"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.effective_at.isoformat(timespec="seconds"),
            ids.format_id(ids.TRANSACTION, row.transaction_id),
            ids.format_id(ids.ACCOUNT, row.account_id),
            row.direction,
            f"{row.amount:,}",
            row.unit_code,
            row.phase,
        )
    console.print(table)


@app.command("check")
def check(tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant (default: all).")) -> None:
    """Run the integrity check now; exit code 1 if any discrepancy is found."""
    with open_tally() as tally, rejections_as_errors():
        tenant_id = resolve_tenant(tally, tenant) if tenant else None
        report = run_integrity_check(tally.engine, tally.clock, tenant_id)
    if report.ok:
        console.print(f"[green]ledger consistent[/green]: {report.checks_run} checks, 0 discrepancies")
        return
    table = Table(title=f"{report.discrepancy_count} discrepancies")
    for column in ("check", "tenant", "object", "detail"):
        table.add_column(column)
    for discrepancy in report.discrepancies:
        table.add_row(
            discrepancy.check,
            ids.format_id(ids.TENANT, discrepancy.tenant_id),
            discrepancy.object_id,
            json.dumps(discrepancy.detail, default=str),
        )
    console.print(table)
    raise typer.Exit(1)
