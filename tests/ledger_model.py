"""A reference ledger in memory, built only from the core's rules, and random operations to feed it.

`ReferenceLedger` is tally's write path with the database taken out: the same checks in the same
order (shape, idempotency replay, accounts and balance, resolution or reversal rules, constraints),
decided by `tally.core.ledger.model`. Property tests drive it with `operations()` and check the
invariants from the outside; the database property test runs the same operations through tally and
expects the same answers and the same balances.

Operations are abstract (account numbers, "the n-th transaction so far") so one list can be played
against both; `plan` turns one into a concrete request against the current state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from hypothesis import strategies as st

from tally.core.ledger import model
from tally.core.ledger.model import (
    Account,
    Balances,
    Direction,
    Entry,
    PendingTransaction,
    TransactionKind,
    TransactionSpec,
)
from tally.core.rejections import Rejected


@dataclass(frozen=True, slots=True)
class AccountPlan:
    name: str
    unit_code: str
    normal_balance: Direction
    minimum_balance: int | None


# Two units; floors of 0, a negative floor (an overdraft), and no floor; both normal directions.
ACCOUNTS: tuple[AccountPlan, ...] = (
    AccountPlan("equity", "USD", Direction.CREDIT, None),
    AccountPlan("wallet_a", "USD", Direction.CREDIT, 0),
    AccountPlan("wallet_b", "USD", Direction.CREDIT, 0),
    AccountPlan("overdraft", "USD", Direction.CREDIT, -200),
    AccountPlan("receivable", "USD", Direction.DEBIT, 0),
    AccountPlan("credits_pool", "CREDITS", Direction.CREDIT, None),
    AccountPlan("credits_wallet", "CREDITS", Direction.CREDIT, 0),
)
SOURCES = (0, 5)  # unconstrained accounts, drawn more often as debits so money gets into the others


# --- operations -------------------------------------------------------------------------------------

Tweak = Literal["unbalanced", "unknown_account", "zero_amount"]
Leg = tuple[int, int, int]  # (debit account number, credit account number, amount)


@dataclass(frozen=True, slots=True)
class PostOp:
    legs: tuple[Leg, ...]
    pending: bool
    tweak: Tweak | None


@dataclass(frozen=True, slots=True)
class ResolveOp:
    choice: int  # the n-th pending transaction so far (modulo); with `any_kind`, the n-th of any kind
    mode: Literal["void", "full", "partial", "excess"]
    percent: int
    any_kind: bool = False


@dataclass(frozen=True, slots=True)
class ReverseOp:
    choice: int  # the n-th posted transaction so far (modulo); with `any_kind`, the n-th of any kind
    any_kind: bool = False


@dataclass(frozen=True, slots=True)
class ReplayOp:
    choice: int  # the n-th request so far (modulo), sent again
    altered: bool


Operation = PostOp | ResolveOp | ReverseOp | ReplayOp


def _legs_in(unit_code: str) -> st.SearchStrategy[Leg]:
    numbers = [number for number, account in enumerate(ACCOUNTS) if account.unit_code == unit_code]
    sources = [number for number in SOURCES if number in numbers]
    debit = st.one_of(st.sampled_from(sources), st.sampled_from(numbers))
    return st.tuples(debit, st.sampled_from(numbers), st.integers(1, 300))


# Legs stay within one unit (crossing units is what the "unbalanced" tweak and mixed legs are for).
_leg = st.one_of(_legs_in("USD"), _legs_in("USD"), _legs_in("CREDITS"))
_rarely = st.sampled_from([False, False, False, True])
_tweak = st.sampled_from([None, None, None, None, None, "unbalanced", "unknown_account", "zero_amount"])


def operations(max_size: int) -> st.SearchStrategy[list[Operation]]:
    post = st.builds(
        PostOp, legs=st.lists(_leg, min_size=1, max_size=3).map(tuple), pending=st.booleans(), tweak=_tweak
    )
    operation = st.one_of(
        post,
        post,
        st.builds(
            PostOp, legs=st.lists(_leg, min_size=1, max_size=2).map(tuple), pending=st.just(True), tweak=st.none()
        ),
        st.builds(
            ResolveOp,
            choice=st.integers(0, 50),
            mode=st.sampled_from(["void", "full", "partial", "excess"]),
            percent=st.integers(1, 100),
            any_kind=_rarely,
        ),
        st.builds(ReverseOp, choice=st.integers(0, 50), any_kind=_rarely),
        st.builds(ReplayOp, choice=st.integers(0, 50), altered=st.booleans()),
    )
    return st.lists(operation, min_size=1, max_size=max_size)


# --- requests: an operation made concrete -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostRequest:
    key: str
    entries: tuple[Entry, ...]
    pending: bool
    description: str = ""


@dataclass(frozen=True, slots=True)
class ResolveRequest:
    key: str
    target: str | None  # a transaction id of the reference ledger; None: no such transaction
    void: bool
    entries: tuple[Entry, ...] | None  # None: post in full
    description: str = ""


@dataclass(frozen=True, slots=True)
class ReverseRequest:
    key: str
    target: str | None
    description: str = ""


Request = PostRequest | ResolveRequest | ReverseRequest
UNKNOWN_ACCOUNT = "unknown"


@dataclass(frozen=True, slots=True)
class Answer:
    """What the ledger said: a transaction (new or replayed), or a rejection code."""

    transaction_id: str | None = None
    replayed: bool = False
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    id: str
    spec: TransactionSpec


@dataclass
class ReferenceLedger:
    accounts: dict[str, Account]
    transactions: dict[str, Stored] = field(default_factory=dict)  # in creation order
    by_key: dict[str, Stored] = field(default_factory=dict)
    resolved: set[str] = field(default_factory=set)
    reversed: set[str] = field(default_factory=set)

    @classmethod
    def with_accounts(cls, ids: Sequence[str]) -> ReferenceLedger:
        return cls(
            {
                account_id: Account(account_id, plan.unit_code, plan.normal_balance, plan.minimum_balance)
                for account_id, plan in zip(ids, ACCOUNTS, strict=True)
            }
        )

    @property
    def balances(self) -> dict[str, Balances]:
        return {account_id: account.balances for account_id, account in self.accounts.items()}

    # The use cases, as the app layer has them: loads and checks first, then the one write path.

    def handle(self, request: Request) -> Answer:
        try:
            return self._submit(self._spec(request))
        except Rejected as rejected:
            return Answer(code=rejected.rejection.code)

    def _spec(self, request: Request) -> TransactionSpec:
        match request:
            case PostRequest():
                return TransactionSpec(
                    idempotency_key=request.key,
                    kind=TransactionKind.PENDING if request.pending else TransactionKind.POSTED,
                    entries=request.entries,
                    effective_at=None,
                    description=request.description,
                )
            case ResolveRequest():
                pending = self.transactions.get(request.target) if request.target else None
                if pending is None:
                    raise Rejected.because("transaction_not_found", "", "pending_transaction_id")
                if pending.spec.kind is not TransactionKind.PENDING:
                    raise Rejected.because("transaction_must_be_pending", "", "pending_transaction_id")
                if request.void:
                    entries: tuple[Entry, ...] = ()
                elif request.entries is None:
                    entries = model.full_post_entries(PendingTransaction(pending.id, pending.spec.entries, False))
                else:
                    entries = request.entries
                return TransactionSpec(
                    idempotency_key=request.key,
                    kind=TransactionKind.VOID_PENDING if request.void else TransactionKind.POST_PENDING,
                    entries=entries,
                    effective_at=None,
                    template="void_pending" if request.void else "post_pending",
                    description=request.description,
                    reference=pending.spec.reference,
                    pending_transaction_id=pending.id,
                )
            case ReverseRequest():
                original = self.transactions.get(request.target) if request.target else None
                if original is None:
                    raise Rejected.because("transaction_not_found", "", "transaction_id")
                if original.spec.kind not in (TransactionKind.POSTED, TransactionKind.POST_PENDING):
                    raise Rejected.because("transaction_must_be_posted", "", "transaction_id")
                return TransactionSpec(
                    idempotency_key=request.key,
                    kind=TransactionKind.REVERSAL,
                    entries=model.reversal_entries(original.spec.entries),
                    effective_at=None,
                    template=f"{original.spec.template}.reversal",
                    description=request.description or f"reversal of {original.spec.description}".strip(),
                    reference=original.spec.reference,
                    reverses_transaction_id=original.id,
                )

    def _submit(self, spec: TransactionSpec) -> Answer:
        model.validate_shape(spec)
        stored = self.by_key.get(spec.idempotency_key)
        if stored is not None:
            model.compare_replay(stored.spec, spec)
            return Answer(stored.id, replayed=True)
        model.validate_against_accounts(spec, self.accounts)
        released: tuple[Entry, ...] = ()
        if spec.pending_transaction_id is not None:
            pending = self.transactions[spec.pending_transaction_id]
            state = PendingTransaction(pending.id, pending.spec.entries, pending.id in self.resolved)
            model.validate_resolution(spec, state)
            released = state.entries
        if spec.reverses_transaction_id in self.reversed:
            raise Rejected.because("transaction_already_reversed", "", "transaction_id")
        updated = model.apply(spec, self.accounts, released)
        for account_id, balances in updated.items():
            self.accounts[account_id] = replace(self.accounts[account_id], balances=balances)
        new = Stored(f"tx-{len(self.transactions)}", spec)
        self.transactions[new.id] = new
        self.by_key[spec.idempotency_key] = new
        if spec.pending_transaction_id is not None:
            self.resolved.add(spec.pending_transaction_id)
        if spec.reverses_transaction_id is not None:
            self.reversed.add(spec.reverses_transaction_id)
        return Answer(new.id)


def plan(operation: Operation, index: int, ledger: ReferenceLedger, sent: Sequence[Request]) -> Request | None:
    """The concrete request for `operation`, the `index`-th; None when it has nothing to act on."""
    ids = list(ledger.accounts)
    key = f"op-{index}"
    match operation:
        case PostOp(legs=legs, pending=pending, tweak=tweak):
            entries = [
                entry
                for debit, credit, amount in legs
                for entry in (Entry(ids[debit], Direction.DEBIT, amount), Entry(ids[credit], Direction.CREDIT, amount))
            ]
            if tweak == "unbalanced":
                entries[-1] = replace(entries[-1], amount=entries[-1].amount + 1)
            elif tweak == "unknown_account":
                entries[0] = replace(entries[0], account_id=UNKNOWN_ACCOUNT)
            elif tweak == "zero_amount":
                entries[0] = replace(entries[0], amount=0)
                entries[1] = replace(entries[1], amount=0)
            return PostRequest(key, tuple(entries), pending)
        case ResolveOp(choice=choice, mode=mode, percent=percent, any_kind=any_kind):
            target = _nth(ledger, choice, None if any_kind else {TransactionKind.PENDING})
            if target is None:
                return None
            entries: tuple[Entry, ...] | None = None
            reserved = ledger.transactions[target].spec.entries
            if reserved and mode in ("partial", "excess"):
                entries = tuple(
                    replace(entry, amount=max(1, entry.amount * percent // 100)) if mode == "partial" else entry
                    for entry in reserved
                )
                if mode == "excess":  # one more than reserved, on one debit and its credit
                    entries = (
                        replace(entries[0], amount=entries[0].amount + 1),
                        replace(entries[1], amount=entries[1].amount + 1),
                        *entries[2:],
                    )
            return ResolveRequest(key, target, void=mode == "void", entries=entries)
        case ReverseOp(choice=choice, any_kind=any_kind):
            target = _nth(ledger, choice, None if any_kind else {TransactionKind.POSTED, TransactionKind.POST_PENDING})
            return ReverseRequest(key, target) if target is not None else None
        case ReplayOp(choice=choice, altered=altered):
            if not sent:
                return None
            earlier = sent[choice % len(sent)]
            if not altered:
                return earlier
            if isinstance(earlier, PostRequest) and earlier.entries:
                first, second, *rest = earlier.entries
                bigger = (replace(first, amount=first.amount + 1), replace(second, amount=second.amount + 1))
                return replace(earlier, entries=(*bigger, *rest))
            return replace(earlier, description="sent again, changed")
    raise AssertionError(operation)


def _nth(ledger: ReferenceLedger, choice: int, kinds: set[TransactionKind] | None) -> str | None:
    """The n-th transaction (modulo) among those of `kinds`, or of any kind when there are none."""
    ids = [stored.id for stored in ledger.transactions.values() if kinds is None or stored.spec.kind in kinds]
    ids = ids or list(ledger.transactions)
    return ids[choice % len(ids)] if ids else None


# --- invariants, computed independently of the rules that maintain them ------------------------------


def recompute_balances(ledger: ReferenceLedger) -> dict[str, Balances]:
    """Every account's counters from the stored transactions alone: posted entries move posted
    counters; a pending transaction's entries count as pending until it is resolved."""
    totals = {account_id: [0, 0, 0, 0] for account_id in ledger.accounts}
    for stored in ledger.transactions.values():
        pending = stored.spec.kind is TransactionKind.PENDING
        if pending and stored.id in ledger.resolved:
            continue
        for entry in stored.spec.entries:
            slot = (2 if pending else 0) + (0 if entry.direction is Direction.DEBIT else 1)
            totals[entry.account_id][slot] += entry.amount
    return {account_id: Balances(*counters) for account_id, counters in totals.items()}


def net_per_unit(entries: Sequence[Entry], units: Mapping[str, str]) -> dict[str, int]:
    net: dict[str, int] = {}
    for entry in entries:
        unit = units[entry.account_id]
        net[unit] = net.get(unit, 0) + (entry.amount if entry.direction is Direction.DEBIT else -entry.amount)
    return net


def available(account: Account) -> int:
    """Posted balance in the normal direction, less pending amounts that would lower it."""
    b = account.balances
    if account.normal_balance is Direction.DEBIT:
        return b.debits_posted - b.credits_posted - b.credits_pending
    return b.credits_posted - b.debits_posted - b.debits_pending
