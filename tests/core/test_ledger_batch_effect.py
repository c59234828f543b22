"""`batch_effect` decides a whole batch at once; it must agree with applying the batch one by one.

The writer's fast path posts a batch in one statement when, per account, the start balance plus the
batch's lowest running change stays on the floor, and falls back to the one-by-one path otherwise.
These properties hold the shortcut to `apply`: same verdict, same final counters.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.core.ledger import model
from tally.core.ledger.model import Account, Balances, Direction, Entry, TransactionKind, TransactionSpec
from tally.core.rejections import InvariantViolation, Rejected

ACCOUNTS = {
    "wallet-a": Account("wallet-a", "USD", Direction.CREDIT, 0),
    "wallet-b": Account("wallet-b", "USD", Direction.CREDIT, 0),
    "floor-10": Account("floor-10", "USD", Direction.CREDIT, -10),
    "cash": Account("cash", "USD", Direction.DEBIT, None),
    "asset-floored": Account("asset-floored", "USD", Direction.DEBIT, 0),
}
IDS = sorted(ACCOUNTS)


@st.composite
def _specs(draw: st.DrawFn) -> list[TransactionSpec]:
    specs = []
    for index in range(draw(st.integers(1, 12))):
        debit, credit = draw(st.lists(st.sampled_from(IDS), min_size=2, max_size=2, unique=True))
        amount = draw(st.integers(1, 60))
        entries = [Entry(debit, Direction.DEBIT, amount), Entry(credit, Direction.CREDIT, amount)]
        if draw(st.booleans()):  # a third and fourth entry on the same accounts, reversed in part
            part = draw(st.integers(1, 30))
            entries += [Entry(credit, Direction.DEBIT, part), Entry(debit, Direction.CREDIT, part)]
        kind = draw(st.sampled_from([TransactionKind.POSTED, TransactionKind.POSTED, TransactionKind.PENDING]))
        specs.append(TransactionSpec(f"key-{index}", kind, tuple(entries), None))
    return specs


@st.composite
def _start(draw: st.DrawFn) -> dict[str, Account]:
    """Start balances that respect every floor, as the database guarantees."""
    accounts = {}
    for account_id, account in ACCOUNTS.items():
        while True:
            balances = Balances(*(draw(st.integers(0, 80)) for _ in range(4)))
            if account.within_constraint(balances):
                break
            balances = Balances(balances.debits_posted, balances.credits_posted, 0, 0)
            if account.within_constraint(balances):
                break
            balances = Balances(0, 100, 0, 0) if account.normal_balance is Direction.CREDIT else Balances(100, 0, 0, 0)
            break
        accounts[account_id] = account.with_balances(balances)
    return accounts


def _one_by_one(specs: list[TransactionSpec], accounts: dict[str, Account]) -> tuple[bool, dict[str, Balances]]:
    """Every spec accepted by `apply` in turn, and the final balances (None verdict on the first refusal)."""
    current = dict(accounts)
    for spec in specs:
        try:
            updated = model.apply(spec, current)
        except Rejected:
            return False, {}
        for account_id, balances in updated.items():
            current[account_id] = current[account_id].with_balances(balances)
    return True, {account_id: account.balances for account_id, account in current.items()}


def _at_once(specs: list[TransactionSpec], accounts: dict[str, Account]) -> tuple[bool, dict[str, Balances]]:
    effects = model.batch_effect(specs, accounts)
    for account_id, effect in effects.items():
        account = accounts[account_id]
        if (
            account.minimum_balance is not None
            and account.balances.available(account.normal_balance) + effect.available_change_lowest
            < account.minimum_balance
        ):
            return False, {}
    final = {}
    for account_id, account in accounts.items():
        effect = effects.get(account_id)
        if effect is None:
            final[account_id] = account.balances
            continue
        before, delta = account.balances, effect.delta
        final[account_id] = Balances(
            before.debits_posted + delta.debits_posted,
            before.credits_posted + delta.credits_posted,
            before.debits_pending + delta.debits_pending,
            before.credits_pending + delta.credits_pending,
        )
    return True, final


@given(_specs(), _start())
def test_the_batch_verdict_and_final_balances_match_applying_one_by_one(
    specs: list[TransactionSpec], accounts: dict[str, Account]
) -> None:
    assert _at_once(specs, accounts) == _one_by_one(specs, accounts)


def test_a_dip_below_the_floor_in_the_middle_of_a_batch_is_seen() -> None:
    """Net zero over the batch, but the wallet is empty after the first transfer: refused one by one."""
    accounts = {account_id: account for account_id, account in ACCOUNTS.items()}
    out = TransactionSpec(
        "out", TransactionKind.POSTED, (Entry("wallet-a", Direction.DEBIT, 5), Entry("cash", Direction.CREDIT, 5)), None
    )
    back = TransactionSpec(
        "in", TransactionKind.POSTED, (Entry("cash", Direction.DEBIT, 5), Entry("wallet-a", Direction.CREDIT, 5)), None
    )
    effects = model.batch_effect([out, back], accounts)
    assert effects["wallet-a"].delta == Balances(5, 5, 0, 0)
    assert effects["wallet-a"].available_change_lowest == -5
    assert _at_once([out, back], accounts) == _one_by_one([out, back], accounts) == (False, {})
    # The other order never dips.
    assert effects != model.batch_effect([back, out], accounts)
    assert model.batch_effect([back, out], accounts)["wallet-a"].available_change_lowest == 0


def test_pending_credits_do_not_fund_anything_until_posted() -> None:
    accounts = dict(ACCOUNTS)
    reserve_in = TransactionSpec(
        "r", TransactionKind.PENDING, (Entry("cash", Direction.DEBIT, 9), Entry("wallet-b", Direction.CREDIT, 9)), None
    )
    effects = model.batch_effect([reserve_in], accounts)
    assert effects["wallet-b"].delta == Balances(0, 0, 0, 9)
    assert effects["wallet-b"].available_change_lowest == 0
    assert effects["cash"].available_change_lowest == 0  # a pending debit on a debit-normal account adds nothing yet


def test_resolutions_are_not_for_batch_effect() -> None:
    void = TransactionSpec("v", TransactionKind.VOID_PENDING, (), None, pending_transaction_id="p")
    with pytest.raises(InvariantViolation):
        model.batch_effect([void], ACCOUNTS)
