"""Small builders shared by ledger tests."""

from __future__ import annotations

import uuid
from datetime import datetime

from tally.app.ledger_accounts import AccountInput, LedgerAccount, create_account
from tally.app.post_ledger_transactions import EntryInput, TransactionInput
from tally.bootstrap import Tally
from tally.core.ledger.model import AccountType, Direction


def wallet(tally: Tally, tenant_id: uuid.UUID, name: str, unit: str = "USD", floor: int | None = 0) -> LedgerAccount:
    """A customer-style account that must not go negative (a liability: credits increase it)."""
    account, _ = create_account(
        tally.engine,
        tenant_id,
        AccountInput(
            code=f"wallet.{name}", unit_code=unit, type=AccountType.LIABILITY, minimum_balance=floor, name=name
        ),
    )
    return account


def funding(tally: Tally, tenant_id: uuid.UUID, unit: str = "USD") -> LedgerAccount:
    account, _ = create_account(tally.engine, tenant_id, AccountInput(code="opening_balance_equity", unit_code=unit))
    return account


def transfer(
    key: str,
    debit: LedgerAccount,
    credit: LedgerAccount,
    amount: int,
    *,
    pending: bool = False,
    effective_at: datetime | None = None,
    description: str = "",
) -> TransactionInput:
    """Move `amount` out of `debit` into `credit` (for liabilities: debit reduces, credit increases)."""
    return TransactionInput(
        idempotency_key=key,
        entries=(
            EntryInput(account_id=debit.id, direction=Direction.DEBIT, amount=amount),
            EntryInput(account_id=credit.id, direction=Direction.CREDIT, amount=amount),
        ),
        pending=pending,
        effective_at=effective_at,
        description=description,
    )
