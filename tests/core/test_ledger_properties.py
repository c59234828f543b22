"""Properties of the ledger rules (pure, no database), on random sequences of operations.

The reference ledger (`tests/ledger_model.py`) decides with the core's functions only; these tests
check what must hold whatever it was asked: every accepted transaction balances per unit; no
constrained account ever leaves its constraint; pending counters never go negative; a rejection
changes nothing; and the cached counters always equal a recomputation from the accepted entries.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tally.core.ledger import model
from tally.core.ledger.model import Direction, Entry, TransactionKind
from tests.ledger_model import (
    ACCOUNTS,
    PostOp,
    ReferenceLedger,
    Request,
    ReverseOp,
    available,
    net_per_unit,
    operations,
    plan,
    recompute_balances,
)

ACCOUNT_IDS = [f"acct-{index}" for index in range(len(ACCOUNTS))]
UNITS = {account_id: account.unit_code for account_id, account in zip(ACCOUNT_IDS, ACCOUNTS, strict=True)}


# No deadline: a loaded machine makes any per-example time limit flaky.
@settings(max_examples=200, deadline=None)
@given(operations(max_size=40))
def test_random_operations_keep_every_ledger_invariant(ops: list) -> None:
    ledger = ReferenceLedger.with_accounts(ACCOUNT_IDS)
    sent: list[Request] = []
    for index, operation in enumerate(ops):
        request = plan(operation, index, ledger, sent)
        if request is None:
            continue
        sent.append(request)
        before = ledger.balances
        count_before = len(ledger.transactions)
        answer = ledger.handle(request)

        if answer.code is not None or answer.replayed:
            assert ledger.balances == before, "a rejection or a replay moves nothing"
            assert len(ledger.transactions) == count_before
        else:
            assert answer.transaction_id is not None
            accepted = ledger.transactions[answer.transaction_id].spec
            assert set(net_per_unit(accepted.entries, UNITS).values()) <= {0}, "debits equal credits per unit"
            if accepted.kind is not TransactionKind.VOID_PENDING:
                assert len(accepted.entries) >= 2
            assert all(entry.amount > 0 for entry in accepted.entries)

        for account in ledger.accounts.values():
            balances = account.balances
            assert min(balances.debits_pending, balances.credits_pending) >= 0, "pending counters never negative"
            assert min(balances.debits_posted, balances.credits_posted) >= 0
            if account.minimum_balance is not None:
                assert available(account) >= account.minimum_balance, account
        assert ledger.balances == recompute_balances(ledger)

    assert ledger.balances == recompute_balances(ledger)
    # Whatever happened, the ledger as a whole sums to zero per unit.
    every_entry = [
        entry
        for stored in ledger.transactions.values()
        if stored.spec.kind is not TransactionKind.PENDING or stored.id not in ledger.resolved
        for entry in stored.spec.entries
    ]
    assert set(net_per_unit(every_entry, UNITS).values()) <= {0}


@settings(deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(1, 500)), min_size=1, max_size=5))
def test_a_reversal_undoes_a_posting_exactly(legs: list[tuple[int, int, int]]) -> None:
    ledger = ReferenceLedger.with_accounts(ACCOUNT_IDS)
    # Fund every USD account from equity first, so the posting and its reversal can both be afforded.
    funding = plan(PostOp(tuple((0, credit, 10_000) for credit in range(1, 4)), False, None), 0, ledger, [])
    assert funding is not None and ledger.handle(funding).code is None
    funded = ledger.balances
    posting = plan(PostOp(tuple(legs), False, None), 1, ledger, [])
    assert posting is not None
    posted = ledger.handle(posting)
    assert posted.code is None, posted
    reversal = plan(ReverseOp(1), 2, ledger, [])
    assert reversal is not None
    reversed_answer = ledger.handle(reversal)
    assert reversed_answer.code is None, reversed_answer
    # Counters only grow, so "undone" means every account's net is back where it was.
    for account_id, account in ledger.accounts.items():
        before, after = funded[account_id], account.balances
        assert after.posted(account.normal_balance) == before.posted(account.normal_balance)
    assert ledger.handle(reversal).replayed
    second_reversal = plan(ReverseOp(1), 3, ledger, [])
    assert second_reversal is not None
    assert ledger.handle(second_reversal).code == "transaction_already_reversed"


def test_reversal_entries_mirror_the_original() -> None:
    entries = (Entry("a", Direction.DEBIT, 5), Entry("b", Direction.CREDIT, 5))
    assert model.reversal_entries(entries) == (Entry("a", Direction.CREDIT, 5), Entry("b", Direction.DEBIT, 5))
    assert model.reversal_entries(model.reversal_entries(entries)) == entries
