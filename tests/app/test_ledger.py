"""The ledger use cases on real PostgreSQL: posting, idempotency, constraints, two-phase, reversals,
balances, append-only storage and the integrity check."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from tally.app.check_ledger_integrity import run_integrity_check
from tally.app.ledger_accounts import AccountInput, create_account, create_unit
from tally.app.ledger_queries import EntryFilter, account_balance, aggregated_balances, list_entries
from tally.app.post_ledger_template import post_template
from tally.app.post_ledger_transactions import EntryInput, TransactionInput, post_batch, post_transaction
from tally.app.resolve_pending_transaction import ResolutionInput, resolve_pending_transaction
from tally.app.reverse_ledger_transaction import ReversalInput, reverse_transaction
from tally.app.tenants import create_tenant
from tally.bootstrap import Tally
from tally.core.ledger.model import AccountType, Direction, Entry
from tally.core.ledger.templates import CreditsPurchased, credits_purchased
from tally.core.rejections import Rejected
from tests.ledger_helpers import funding, transfer, wallet


def _code(error: pytest.ExceptionInfo[Rejected]) -> str:
    return error.value.rejection.code


def _funded(tally: Tally, tenant_id: uuid.UUID, amount: int = 10_000):
    source = funding(tally, tenant_id)
    alice = wallet(tally, tenant_id, "alice")
    post_transaction(tally.engine, tally.clock, tenant_id, transfer(f"fund-{uuid.uuid4()}", source, alice, amount))
    return source, alice


def test_posting_moves_cached_balances_and_entries(tally: Tally, tenant_id: uuid.UUID) -> None:
    source, alice = _funded(tally, tenant_id, 10_000)
    bob = wallet(tally, tenant_id, "bob")
    outcome = post_transaction(tally.engine, tally.clock, tenant_id, transfer("t1", alice, bob, 2_500))
    assert not outcome.replayed
    assert account_balance(tally.engine, tenant_id, alice.id).posted == 7_500
    assert account_balance(tally.engine, tenant_id, bob.id).posted == 2_500
    # Funding debits the credit-normal equity account, so its balance in its normal direction is negative.
    assert account_balance(tally.engine, tenant_id, source.id).posted == -10_000
    page = list_entries(tally.engine, tenant_id, EntryFilter(account_id=bob.id))
    assert [(entry.direction, entry.amount) for entry in page.items] == [("credit", 2_500)]
    assert not page.has_more


def test_identical_replay_returns_the_original_and_moves_nothing(tally: Tally, tenant_id: uuid.UUID) -> None:
    _, alice = _funded(tally, tenant_id)
    bob = wallet(tally, tenant_id, "bob")
    first = post_transaction(tally.engine, tally.clock, tenant_id, transfer("same", alice, bob, 100))
    again = post_transaction(tally.engine, tally.clock, tenant_id, transfer("same", alice, bob, 100))
    assert again.replayed
    assert again.unwrap().id == first.unwrap().id
    assert account_balance(tally.engine, tenant_id, bob.id).posted == 100


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"amount": 101}, "exists_with_different_amount"),
        ({"swap": True}, "exists_with_different_accounts"),
        ({"pending": True}, "exists_with_different_kind"),
        ({"description": "other"}, "exists_with_different_description"),
        ({"effective_at": datetime(2020, 1, 1, tzinfo=UTC)}, "exists_with_different_effective_at"),
    ],
)
def test_replay_with_different_content_is_refused_by_field(
    tally: Tally, tenant_id: uuid.UUID, change: dict[str, object], code: str
) -> None:
    _, alice = _funded(tally, tenant_id)
    bob = wallet(tally, tenant_id, "bob")
    post_transaction(tally.engine, tally.clock, tenant_id, transfer("k", alice, bob, 100))
    debit, credit = (bob, alice) if change.get("swap") else (alice, bob)
    replay = transfer(
        "k",
        debit,
        credit,
        int(change.get("amount", 100)),  # type: ignore[call-overload]
        pending=bool(change.get("pending", False)),
        description=str(change.get("description", "")),
        effective_at=change.get("effective_at"),  # type: ignore[arg-type]
    )
    with pytest.raises(Rejected) as error:
        post_transaction(tally.engine, tally.clock, tenant_id, replay)
    assert _code(error) == code
    assert account_balance(tally.engine, tenant_id, bob.id).posted == 100


def test_unbalanced_unknown_and_foreign_accounts_are_refused_and_nothing_is_written(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    _, alice = _funded(tally, tenant_id)
    bob = wallet(tally, tenant_id, "bob")
    other_tenant = create_tenant(tally.engine, "other")
    foreign = wallet(tally, other_tenant, "mallory")
    unbalanced = TransactionInput(
        idempotency_key="u",
        entries=(
            EntryInput(account_id=alice.id, direction=Direction.DEBIT, amount=100),
            EntryInput(account_id=bob.id, direction=Direction.CREDIT, amount=99),
        ),
    )
    cases = [
        (unbalanced, "transaction_must_balance"),
        (transfer("f", alice, foreign, 100), "account_must_exist"),
        (transfer("z", alice, bob, 0), "amount_must_be_positive"),
        (transfer("o", alice, bob, 2**63), "amount_exceeds_maximum"),
        (transfer("n", alice, bob, 10**6), "balance_must_not_fall_below_minimum"),
    ]
    for transaction, code in cases:
        with pytest.raises(Rejected) as error:
            post_transaction(tally.engine, tally.clock, tenant_id, transaction)
        assert _code(error) == code, transaction
    assert account_balance(tally.engine, tenant_id, bob.id).posted == 0
    assert account_balance(tally.engine, other_tenant, foreign.id).posted == 0
    # A refused key is not used up: the same key with valid content posts.
    post_transaction(tally.engine, tally.clock, tenant_id, transfer("u", alice, bob, 100))


def test_decimal_amounts_follow_the_unit_precision(tally: Tally, tenant_id: uuid.UUID) -> None:
    source = funding(tally, tenant_id, "KWD")
    target = wallet(tally, tenant_id, "kw", unit="KWD")

    def entries(amount: str) -> tuple[EntryInput, EntryInput]:
        return (
            EntryInput(account_id=source.id, direction=Direction.DEBIT, amount_decimal=Decimal(amount)),
            EntryInput(account_id=target.id, direction=Direction.CREDIT, amount_decimal=Decimal(amount)),
        )

    post_transaction(
        tally.engine, tally.clock, tenant_id, TransactionInput(idempotency_key="a", entries=entries("1.234"))
    )
    assert account_balance(tally.engine, tenant_id, target.id).posted == 1_234
    with pytest.raises(Rejected) as error:
        post_transaction(
            tally.engine, tally.clock, tenant_id, TransactionInput(idempotency_key="b", entries=entries("1.2345"))
        )
    assert _code(error) == "amount_exceeds_unit_precision"


def test_multi_unit_transactions_balance_per_unit(tally: Tally, tenant_id: uuid.UUID) -> None:
    create_unit(tally.engine, tenant_id, "CREDITS", 0, "Credits")
    usd_in, usd_out = funding(tally, tenant_id, "USD"), wallet(tally, tenant_id, "usd", floor=None)
    credits_in, credits_out = funding(tally, tenant_id, "CREDITS"), wallet(tally, tenant_id, "cr", unit="CREDITS")
    swap = TransactionInput(
        idempotency_key="swap",
        entries=(
            EntryInput(account_id=usd_in.id, direction=Direction.DEBIT, amount=500),
            EntryInput(account_id=usd_out.id, direction=Direction.CREDIT, amount=500),
            EntryInput(account_id=credits_in.id, direction=Direction.DEBIT, amount=5_000),
            EntryInput(account_id=credits_out.id, direction=Direction.CREDIT, amount=5_000),
        ),
    )
    post_transaction(tally.engine, tally.clock, tenant_id, swap)
    crossed = TransactionInput(
        idempotency_key="crossed",
        entries=(
            EntryInput(account_id=usd_in.id, direction=Direction.DEBIT, amount=500),
            EntryInput(account_id=credits_out.id, direction=Direction.CREDIT, amount=500),
        ),
    )
    with pytest.raises(Rejected) as error:
        post_transaction(tally.engine, tally.clock, tenant_id, crossed)
    assert _code(error) == "transaction_must_balance"


def test_pending_reserves_then_posts_in_part_exactly_once(tally: Tally, tenant_id: uuid.UUID) -> None:
    _, alice = _funded(tally, tenant_id, 1_000)
    merchant = wallet(tally, tenant_id, "merchant")
    hold = post_transaction(tally.engine, tally.clock, tenant_id, transfer("hold", alice, merchant, 800, pending=True))
    balance = account_balance(tally.engine, tenant_id, alice.id)
    assert (balance.posted, balance.available) == (1_000, 200)
    # The reservation blocks spending past what is available.
    with pytest.raises(Rejected) as error:
        post_transaction(tally.engine, tally.clock, tenant_id, transfer("spend", alice, merchant, 300))
    assert _code(error) == "balance_must_not_fall_below_minimum"

    partial = (Entry(str(alice.id), Direction.DEBIT, 500), Entry(str(merchant.id), Direction.CREDIT, 500))
    posted, replayed = resolve_pending_transaction(
        tally.engine,
        tally.clock,
        tenant_id,
        ResolutionInput(pending_transaction_id=hold.unwrap().id, idempotency_key="capture", entries=partial),
    )
    assert not replayed
    balance = account_balance(tally.engine, tenant_id, alice.id)
    assert (balance.posted, balance.pending, balance.available) == (500, 0, 500)
    assert account_balance(tally.engine, tenant_id, merchant.id).posted == 500
    # A replay of the capture returns it; a second resolution is refused.
    again, replayed = resolve_pending_transaction(
        tally.engine,
        tally.clock,
        tenant_id,
        ResolutionInput(pending_transaction_id=hold.unwrap().id, idempotency_key="capture", entries=partial),
    )
    assert replayed and again.id == posted.id
    with pytest.raises(Rejected) as error:
        resolve_pending_transaction(
            tally.engine,
            tally.clock,
            tenant_id,
            ResolutionInput(pending_transaction_id=hold.unwrap().id, idempotency_key="void", void=True),
        )
    assert _code(error) == "pending_transaction_already_resolved"


def test_post_cannot_exceed_the_reservation_and_void_releases_it(tally: Tally, tenant_id: uuid.UUID) -> None:
    _, alice = _funded(tally, tenant_id, 1_000)
    merchant = wallet(tally, tenant_id, "merchant")
    hold = post_transaction(tally.engine, tally.clock, tenant_id, transfer("hold", alice, merchant, 300, pending=True))
    too_much = (Entry(str(alice.id), Direction.DEBIT, 301), Entry(str(merchant.id), Direction.CREDIT, 301))
    with pytest.raises(Rejected) as error:
        resolve_pending_transaction(
            tally.engine,
            tally.clock,
            tenant_id,
            ResolutionInput(pending_transaction_id=hold.unwrap().id, idempotency_key="c", entries=too_much),
        )
    assert _code(error) == "post_must_not_exceed_pending_amount"
    resolve_pending_transaction(
        tally.engine,
        tally.clock,
        tenant_id,
        ResolutionInput(pending_transaction_id=hold.unwrap().id, idempotency_key="v", void=True),
    )
    balance = account_balance(tally.engine, tenant_id, alice.id)
    assert (balance.posted, balance.pending, balance.available) == (1_000, 0, 1_000)


def test_reversal_undoes_once_and_respects_constraints(tally: Tally, tenant_id: uuid.UUID) -> None:
    _, alice = _funded(tally, tenant_id, 1_000)
    bob = wallet(tally, tenant_id, "bob")
    original = post_transaction(tally.engine, tally.clock, tenant_id, transfer("pay", alice, bob, 400)).unwrap()
    reversal, _ = reverse_transaction(
        tally.engine, tally.clock, tenant_id, ReversalInput(transaction_id=original.id, idempotency_key="undo")
    )
    assert reversal.reverses_transaction_id == original.id
    assert account_balance(tally.engine, tenant_id, alice.id).posted == 1_000
    with pytest.raises(Rejected) as error:
        reverse_transaction(
            tally.engine, tally.clock, tenant_id, ReversalInput(transaction_id=original.id, idempotency_key="undo2")
        )
    assert _code(error) == "transaction_already_reversed"
    # Once bob has spent the money, reversing his incoming payment would overdraw him: refused.
    again = post_transaction(tally.engine, tally.clock, tenant_id, transfer("pay2", alice, bob, 400)).unwrap()
    carol = wallet(tally, tenant_id, "carol")
    post_transaction(tally.engine, tally.clock, tenant_id, transfer("spent", bob, carol, 400))
    with pytest.raises(Rejected) as error:
        reverse_transaction(
            tally.engine, tally.clock, tenant_id, ReversalInput(transaction_id=again.id, idempotency_key="undo3")
        )
    assert _code(error) == "balance_must_not_fall_below_minimum"


def test_balance_as_of_an_effective_time(tally: Tally, tenant_id: uuid.UUID) -> None:
    source = funding(tally, tenant_id)
    alice = wallet(tally, tenant_id, "alice")
    day = datetime(2026, 1, 1, tzinfo=UTC)
    for offset in range(3):
        post_transaction(
            tally.engine,
            tally.clock,
            tenant_id,
            transfer(f"d{offset}", source, alice, 100, effective_at=day + timedelta(days=offset)),
        )
    hold = post_transaction(
        tally.engine,
        tally.clock,
        tenant_id,
        transfer("h", alice, source, 50, pending=True, effective_at=day + timedelta(days=3)),
    ).unwrap()
    resolve_pending_transaction(
        tally.engine,
        tally.clock,
        tenant_id,
        ResolutionInput(
            pending_transaction_id=hold.id, idempotency_key="hv", void=True, effective_at=day + timedelta(days=5)
        ),
    )
    assert account_balance(tally.engine, tenant_id, alice.id, day - timedelta(seconds=1)).posted == 0
    assert account_balance(tally.engine, tenant_id, alice.id, day + timedelta(days=1)).posted == 200
    as_of_day_4 = account_balance(tally.engine, tenant_id, alice.id, day + timedelta(days=4))
    assert (as_of_day_4.posted, as_of_day_4.pending, as_of_day_4.available) == (300, -50, 250)
    now = account_balance(tally.engine, tenant_id, alice.id)
    assert (now.posted, now.pending) == (300, 0)


def test_batch_items_are_independent_and_see_earlier_items(tally: Tally, tenant_id: uuid.UUID) -> None:
    _, alice = _funded(tally, tenant_id, 100)
    bob = wallet(tally, tenant_id, "bob")
    outcomes = post_batch(
        tally.engine,
        tally.clock,
        tenant_id,
        [
            transfer("b1", alice, bob, 60),
            transfer("b2", alice, bob, 60),  # only 40 left after b1
            transfer("b3", alice, bob, 40),
            transfer("b1", alice, bob, 60),  # a replay of b1 inside the batch
            transfer("b3", alice, bob, 41),  # a conflicting replay of b3
        ],
    )
    assert [o.rejection.code if o.rejection else ("replayed" if o.replayed else "posted") for o in outcomes] == [
        "posted",
        "balance_must_not_fall_below_minimum",
        "posted",
        "replayed",
        "exists_with_different_amount",
    ]
    assert outcomes[3].unwrap().id == outcomes[0].unwrap().id
    assert account_balance(tally.engine, tenant_id, bob.id).posted == 100


def test_templates_create_chart_accounts_on_demand(tally: Tally, tenant_id: uuid.UUID) -> None:
    posting = credits_purchased(CreditsPurchased(customer_id="cus_1", unit_code="USD", amount=5_000))
    transaction, _ = post_template(tally.engine, tally.clock, tenant_id, posting, idempotency_key="buy-1")
    assert transaction.template == "credits_purchased"
    groups = aggregated_balances(tally.engine, tenant_id, ["code", "customer"])
    by_code = {group.key["code"]: group for group in groups}
    assert by_code["customer_credit"].balances.credits_posted == 5_000
    assert by_code["accounts_receivable"].balances.debits_posted == 5_000


def test_chart_rules_for_accounts(tally: Tally, tenant_id: uuid.UUID) -> None:
    with pytest.raises(Rejected) as error:
        create_account(tally.engine, tenant_id, AccountInput(code="customer_credit", unit_code="USD"))
    assert _code(error) == "customer_id_required"
    with pytest.raises(Rejected) as error:
        create_account(tally.engine, tenant_id, AccountInput(code="widgets", unit_code="USD"))
    assert _code(error) == "account_type_required"
    with pytest.raises(Rejected) as error:
        create_account(tally.engine, tenant_id, AccountInput(code="cash", unit_code="XYZ"))
    assert _code(error) == "unit_must_be_known"
    first, created = create_account(
        tally.engine, tenant_id, AccountInput(code="widgets", unit_code="USD", type=AccountType.ASSET)
    )
    again, created_again = create_account(
        tally.engine, tenant_id, AccountInput(code="widgets", unit_code="USD", type=AccountType.ASSET)
    )
    assert created and not created_again and first.id == again.id
    with pytest.raises(Rejected) as error:
        create_account(tally.engine, tenant_id, AccountInput(code="widgets", unit_code="USD", type=AccountType.EXPENSE))
    assert _code(error) == "account_exists_with_different_type"


def test_database_refuses_edits_of_posted_history(tally: Tally, tenant_id: uuid.UUID) -> None:
    _, alice = _funded(tally, tenant_id)
    with psycopg.connect(tally.database_url, autocommit=True) as connection:
        for statement in (
            "UPDATE ledger_entries SET amount = amount + 1 WHERE tenant_id = %s",
            "DELETE FROM ledger_entries WHERE tenant_id = %s",
            "UPDATE ledger_transactions SET description = 'x' WHERE tenant_id = %s",
            "DELETE FROM ledger_transactions WHERE tenant_id = %s",
        ):
            with pytest.raises(psycopg.errors.RestrictViolation):
                connection.execute(statement, (tenant_id,))
        with pytest.raises(psycopg.errors.RestrictViolation):
            connection.execute("TRUNCATE ledger_entries CASCADE")
        # Accounts stay, and what identifies them never changes: entries rely on it (no foreign keys).
        for statement in (
            "DELETE FROM ledger_accounts WHERE tenant_id = %s",
            "UPDATE ledger_accounts SET unit_code = 'EUR' WHERE tenant_id = %s",
            "UPDATE ledger_accounts SET normal_balance = 'debit' WHERE tenant_id = %s",
            "UPDATE ledger_accounts SET tenant_id = gen_random_uuid() WHERE tenant_id = %s",
        ):
            with pytest.raises(psycopg.errors.RestrictViolation):
                connection.execute(statement, (tenant_id,))
        # The balance floor is enforced by the database itself, not only by tally's code.
        with pytest.raises(psycopg.errors.CheckViolation):
            connection.execute(
                "UPDATE ledger_accounts SET debits_posted = debits_posted + 10 ^ 9 WHERE id = %s", (alice.id,)
            )


def test_integrity_check_passes_on_real_activity_and_reports_tampering(tally: Tally, tenant_id: uuid.UUID) -> None:
    _, alice = _funded(tally, tenant_id, 1_000)
    bob = wallet(tally, tenant_id, "bob")
    hold = post_transaction(tally.engine, tally.clock, tenant_id, transfer("h", alice, bob, 300, pending=True)).unwrap()
    resolve_pending_transaction(
        tally.engine, tally.clock, tenant_id, ResolutionInput(pending_transaction_id=hold.id, idempotency_key="p")
    )
    paid = post_transaction(tally.engine, tally.clock, tenant_id, transfer("x", alice, bob, 100)).unwrap()
    reverse_transaction(
        tally.engine, tally.clock, tenant_id, ReversalInput(transaction_id=paid.id, idempotency_key="r")
    )
    post_transaction(tally.engine, tally.clock, tenant_id, transfer("h2", alice, bob, 50, pending=True))
    report = run_integrity_check(tally.engine, tally.clock, tenant_id)
    assert report.ok, report.discrepancies
    assert report.checks_run >= 8

    with psycopg.connect(tally.database_url, autocommit=True) as connection:
        connection.execute("UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = %s", (bob.id,))
    report = run_integrity_check(tally.engine, tally.clock, tenant_id)
    assert report.discrepancy_count == 1
    assert report.discrepancies[0].check == "cached_balance_must_equal_entries"
    assert report.discrepancies[0].object_id == str(bob.id)


def test_integrity_check_finds_entries_without_their_transaction_or_account(tally: Tally, tenant_id: uuid.UUID) -> None:
    """No foreign key stands behind entries (the write path does): the check must see an orphan."""
    _, alice = _funded(tally, tenant_id, 1_000)
    paid = post_transaction(
        tally.engine, tally.clock, tenant_id, transfer("x", alice, wallet(tally, tenant_id, "bob"), 5)
    )
    transaction = paid.unwrap()
    assert run_integrity_check(tally.engine, tally.clock, tenant_id).ok
    with psycopg.connect(tally.database_url, autocommit=True) as connection:
        connection.execute(
            """INSERT INTO ledger_entries (id, tenant_id, transaction_id, entry_index, account_id, direction, amount,
                                           unit_code, phase, effective_at)
               VALUES (gen_random_uuid(), %s, gen_random_uuid(), 0, %s, 'debit', 1, 'USD', 'posted', now()),
                      (gen_random_uuid(), %s, %s, 9, gen_random_uuid(), 'debit', 1, 'USD', 'posted', now())""",
            (tenant_id, alice.id, tenant_id, transaction.id),
        )
    found = {d.check for d in run_integrity_check(tally.engine, tally.clock, tenant_id).discrepancies}
    assert {"entry_must_reference_transaction", "entry_must_reference_account"} <= found
