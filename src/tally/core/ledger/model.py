"""Ledger values and the rules a transaction must satisfy before it is written.

Every amount is a positive integer of its unit's smallest part. A transaction moves amounts between
accounts; its debits equal its credits in every unit. An account's cached totals are four counters
(debits/credits × posted/pending); every other balance is derived from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from tally.core.money import AMOUNT_MINOR_MAX
from tally.core.rejections import Rejected, require

# Limits (TigerBeetle style: a limit on everything, and a loud failure past it).
ENTRIES_PER_TRANSACTION_MAX = 100
TRANSACTIONS_PER_BATCH_MAX = 1_000
DESCRIPTION_LENGTH_MAX = 1_000
REFERENCE_LENGTH_MAX = 255
IDEMPOTENCY_KEY_LENGTH_MAX = 255


class Direction(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"

    def opposite(self) -> Direction:
        return Direction.CREDIT if self is Direction.DEBIT else Direction.DEBIT


class AccountType(StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    REVENUE = "revenue"
    EXPENSE = "expense"

    @property
    def default_normal_balance(self) -> Direction:
        """Assets and expenses grow with debits; the others with credits. Contra accounts override."""
        return Direction.DEBIT if self in (AccountType.ASSET, AccountType.EXPENSE) else Direction.CREDIT


class TransactionKind(StrEnum):
    POSTED = "posted"  # single phase: moves posted balances now
    PENDING = "pending"  # reserves: moves pending balances until posted or voided
    POST_PENDING = "post_pending"  # resolves a pending transaction by posting all or part of it
    VOID_PENDING = "void_pending"  # resolves a pending transaction by releasing it
    REVERSAL = "reversal"  # undoes a posted transaction, entry by entry

    @property
    def phase(self) -> Phase:
        return Phase.PENDING if self is TransactionKind.PENDING else Phase.POSTED


class Phase(StrEnum):
    PENDING = "pending"
    POSTED = "posted"


@dataclass(frozen=True, slots=True)
class Balances:
    """An account's four counters. Each only grows, except pending, which shrinks on resolution."""

    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0

    def posted(self, normal_balance: Direction) -> int:
        """The posted balance, positive in the account's normal direction."""
        net = self.debits_posted - self.credits_posted
        return net if normal_balance is Direction.DEBIT else -net

    def pending(self, normal_balance: Direction) -> int:
        """The net effect of unresolved pending transactions, in the normal direction."""
        net = self.debits_pending - self.credits_pending
        return net if normal_balance is Direction.DEBIT else -net

    def available(self, normal_balance: Direction) -> int:
        """What can still be spent: posted, less every pending amount that would reduce it.

        Pending amounts that would increase the balance are not counted until they post, so a
        reservation can never be funded by another reservation.
        """
        if normal_balance is Direction.DEBIT:
            return self.debits_posted - self.credits_posted - self.credits_pending
        return self.credits_posted - self.debits_posted - self.debits_pending

    def add(self, direction: Direction, phase: Phase, amount: int) -> Balances:
        # Built directly rather than with `dataclasses.replace`: this runs for every entry posted.
        debits_posted, credits_posted = self.debits_posted, self.credits_posted
        debits_pending, credits_pending = self.debits_pending, self.credits_pending
        match (direction, phase):
            case (Direction.DEBIT, Phase.POSTED):
                debits_posted += amount
            case (Direction.CREDIT, Phase.POSTED):
                credits_posted += amount
            case (Direction.DEBIT, Phase.PENDING):
                debits_pending += amount
            case (Direction.CREDIT, Phase.PENDING):
                credits_pending += amount
            case _:  # pragma: no cover
                raise AssertionError("unreachable")
        return Balances(debits_posted, credits_posted, debits_pending, credits_pending)


@dataclass(frozen=True, slots=True)
class Account:
    """What the rules need to know of an account. `id` is opaque to the core."""

    id: str
    unit_code: str
    normal_balance: Direction
    minimum_balance: int | None
    balances: Balances = field(default_factory=Balances)

    def with_balances(self, balances: Balances) -> Account:
        return Account(self.id, self.unit_code, self.normal_balance, self.minimum_balance, balances)

    def within_constraint(self, balances: Balances) -> bool:
        return self.minimum_balance is None or balances.available(self.normal_balance) >= self.minimum_balance


@dataclass(frozen=True, slots=True)
class Entry:
    account_id: str
    direction: Direction
    amount: int


@dataclass(frozen=True, slots=True)
class TransactionSpec:
    """A transaction as asked for: what the idempotency key stands for, compared field by field."""

    idempotency_key: str
    kind: TransactionKind
    entries: tuple[Entry, ...]
    # None: "when recorded". The writer fills it from its clock; a replay that leaves it out matches.
    effective_at: datetime | None
    template: str = "manual"
    description: str = ""
    reference: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    pending_transaction_id: str | None = None
    reverses_transaction_id: str | None = None


@dataclass(frozen=True, slots=True)
class PendingTransaction:
    """A pending transaction being resolved, with its entries and whether it is already resolved."""

    id: str
    entries: tuple[Entry, ...]
    resolved: bool


def validate_shape(spec: TransactionSpec) -> None:
    """Checks that need no database: sizes, amounts, texts. Raises `Rejected` in a fixed precedence."""
    if not 1 <= len(spec.idempotency_key) <= IDEMPOTENCY_KEY_LENGTH_MAX:
        raise Rejected.because(
            "idempotency_key_length_must_be_1_to_255",
            "idempotency_key must be 1 to 255 characters",
            "idempotency_key",
        )
    if spec.effective_at is not None and spec.effective_at.tzinfo is None:
        raise Rejected.because("effective_at_must_have_timezone", "effective_at needs a UTC offset", "effective_at")
    if len(spec.description) > DESCRIPTION_LENGTH_MAX:
        raise Rejected.because(
            "description_too_long",
            f"description has at most {DESCRIPTION_LENGTH_MAX} characters",
            "description",
        )
    if spec.reference is not None and not 1 <= len(spec.reference) <= REFERENCE_LENGTH_MAX:
        raise Rejected.because(
            "reference_length_must_be_1_to_255", "reference must be 1 to 255 characters", "reference"
        )
    if spec.kind is TransactionKind.VOID_PENDING:
        if spec.entries:
            raise Rejected.because("void_must_have_no_entries", "a void releases the whole pending amount", "entries")
        return
    if len(spec.entries) < 2:
        raise Rejected.because("entries_must_be_at_least_two", "a transaction has at least two entries", "entries")
    if len(spec.entries) > ENTRIES_PER_TRANSACTION_MAX:
        raise Rejected.because(
            "entries_exceed_limit",
            f"a transaction has at most {ENTRIES_PER_TRANSACTION_MAX} entries",
            "entries",
        )
    for index, entry in enumerate(spec.entries):
        if entry.amount <= 0:
            raise Rejected.because("amount_must_be_positive", "entry amounts are positive", f"entries[{index}].amount")
        if entry.amount > AMOUNT_MINOR_MAX:
            raise Rejected.because(
                "amount_exceeds_maximum",
                f"entry amounts are at most {AMOUNT_MINOR_MAX}",
                f"entries[{index}].amount",
            )


def validate_against_accounts(spec: TransactionSpec, accounts: Mapping[str, Account]) -> None:
    """Accounts exist, entries balance per unit. Raises `Rejected` in a fixed precedence."""
    for index, entry in enumerate(spec.entries):
        if entry.account_id not in accounts:
            raise Rejected.because(
                "account_must_exist", "no such account for this tenant", f"entries[{index}].account_id"
            )
    net_by_unit: dict[str, int] = {}
    for entry in spec.entries:
        unit_code = accounts[entry.account_id].unit_code
        signed = entry.amount if entry.direction is Direction.DEBIT else -entry.amount
        net_by_unit[unit_code] = net_by_unit.get(unit_code, 0) + signed
    for unit_code, net in sorted(net_by_unit.items()):
        if net != 0:
            raise Rejected.because(
                "transaction_must_balance",
                f"debits and credits in {unit_code} differ by {abs(net)}",
                "entries",
            )


def validate_resolution(spec: TransactionSpec, pending: PendingTransaction) -> None:
    """A post or void of `pending`: unresolved, and a post moves no more than was reserved."""
    if pending.resolved:
        raise Rejected.because(
            "pending_transaction_already_resolved",
            "this pending transaction was posted or voided already",
            "pending_transaction_id",
        )
    if spec.kind is not TransactionKind.POST_PENDING:
        return
    reserved: dict[tuple[str, Direction], int] = {}
    for entry in pending.entries:
        key = (entry.account_id, entry.direction)
        reserved[key] = reserved.get(key, 0) + entry.amount
    for index, entry in enumerate(spec.entries):
        key = (entry.account_id, entry.direction)
        if key not in reserved:
            raise Rejected.because(
                "post_must_use_pending_accounts",
                "a post moves only accounts and directions the pending transaction reserved",
                f"entries[{index}]",
            )
        reserved[key] -= entry.amount
        if reserved[key] < 0:
            raise Rejected.because(
                "post_must_not_exceed_pending_amount",
                "a post moves at most the reserved amount",
                f"entries[{index}].amount",
            )


def full_post_entries(pending: PendingTransaction) -> tuple[Entry, ...]:
    """Posting a pending transaction in full moves exactly what it reserved."""
    return pending.entries


def reversal_entries(entries: Sequence[Entry]) -> tuple[Entry, ...]:
    """Each entry again, in the opposite direction: the net effect of original plus reversal is zero."""
    return tuple(Entry(entry.account_id, entry.direction.opposite(), entry.amount) for entry in entries)


def apply(
    spec: TransactionSpec,
    accounts: Mapping[str, Account],
    released: Sequence[Entry] = (),
) -> dict[str, Balances]:
    """The new balances of every touched account, or `Rejected` if one would break its constraint.

    `released` are the reserved entries of the pending transaction a post or void resolves; they
    leave the pending counters. The check runs once on the final state of each account, as the
    database CHECK constraint does.
    """
    updated: dict[str, Balances] = {}
    for entry in released:
        current = updated.get(entry.account_id, accounts[entry.account_id].balances)
        updated[entry.account_id] = current.add(entry.direction, Phase.PENDING, -entry.amount)
    for entry in spec.entries:
        current = updated.get(entry.account_id, accounts[entry.account_id].balances)
        updated[entry.account_id] = current.add(entry.direction, spec.kind.phase, entry.amount)
    for index, entry in enumerate(spec.entries):
        account = accounts[entry.account_id]
        balances = updated[entry.account_id]
        require(
            balances.debits_pending >= 0 and balances.credits_pending >= 0,
            "pending counters must not go negative",
        )
        if not account.within_constraint(balances):
            raise Rejected.because(
                "balance_must_not_fall_below_minimum",
                f"the account's available balance would fall below its minimum of {account.minimum_balance}",
                f"entries[{index}].account_id",
            )
    return updated


@dataclass(frozen=True, slots=True)
class AccountEffect:
    """What a run of transactions does to one account: the change of its four counters, and the
    lowest its available balance gets relative to the start, over the moments after each
    transaction that touches it (the moments at which `apply` checks the account's floor)."""

    delta: Balances
    available_change_lowest: int


def batch_effect(specs: Sequence[TransactionSpec], accounts: Mapping[str, Account]) -> dict[str, AccountEffect]:
    """The combined effect of applying `specs` in order, for deciding a whole batch at once.

    For `posted` and `pending` transactions only (they release nothing) whose accounts exist and
    that balance (`validate_against_accounts`). Starting from any balances, applying the specs one
    by one accepts every one of them exactly when, for each touched account with a floor,
    `available(start) + available_change_lowest >= minimum_balance`; and then the final counters
    are the start plus `delta`. `apply` checks each account on the state after each transaction,
    so the lowest of those states is what matters. A property test holds this against `apply`.
    """
    running: dict[str, list[int]] = {}  # debits/credits posted/pending change, then available change
    lowest: dict[str, int] = {}
    for spec in specs:
        require(
            spec.kind in (TransactionKind.POSTED, TransactionKind.PENDING),
            f"batch_effect takes posted and pending transactions, not {spec.kind}",
        )
        pending = spec.kind is TransactionKind.PENDING
        for entry in spec.entries:
            counters = running.get(entry.account_id)
            if counters is None:
                counters = running[entry.account_id] = [0, 0, 0, 0, 0]
            debit = entry.direction is Direction.DEBIT
            counters[(2 if pending else 0) + (0 if debit else 1)] += entry.amount
            # The available balance moves with posted amounts either way, and with pending amounts
            # only when they would reduce it (see `Balances.available`).
            toward_normal = debit == (accounts[entry.account_id].normal_balance is Direction.DEBIT)
            if toward_normal:
                if not pending:
                    counters[4] += entry.amount
            else:
                counters[4] -= entry.amount
        for entry in spec.entries:
            change = running[entry.account_id][4]
            if change < lowest.get(entry.account_id, change + 1):
                lowest[entry.account_id] = change
    return {
        account_id: AccountEffect(Balances(*counters[:4]), lowest[account_id])
        for account_id, counters in running.items()
    }


def compare_replay(original: TransactionSpec, replay: TransactionSpec) -> None:
    """An idempotency key replayed: identical content is fine; anything different is named.

    The order is fixed so one bad replay always gets the same code.
    """
    checks: tuple[tuple[str, object, object], ...] = (
        ("kind", original.kind, replay.kind),
        ("pending_transaction", original.pending_transaction_id, replay.pending_transaction_id),
        ("reversed_transaction", original.reverses_transaction_id, replay.reverses_transaction_id),
        ("accounts", [e.account_id for e in original.entries], [e.account_id for e in replay.entries]),
        ("directions", [e.direction for e in original.entries], [e.direction for e in replay.entries]),
        ("amount", [e.amount for e in original.entries], [e.amount for e in replay.entries]),
        (
            "effective_at",
            original.effective_at,
            replay.effective_at if replay.effective_at else original.effective_at,
        ),
        ("template", original.template, replay.template),
        ("description", original.description, replay.description),
        ("reference", original.reference, replay.reference),
        ("metadata", dict(original.metadata), dict(replay.metadata)),
    )
    for name, before, after in checks:
        if before != after:
            raise Rejected.because(
                f"exists_with_different_{name}",
                f"a transaction with this idempotency key exists with a different {name.replace('_', ' ')}",
                "idempotency_key",
            )
