"""`tally bench ledger`: ledger write throughput, next to the simplest correct raw-SQL transfer.

On one database, in one process, with the same worker threads and the same workload (random pairs
among `accounts` wallets that must not go negative, one unique idempotency key per transfer):

1. tally — `post_transaction` per transfer (tally's whole write path: idempotency lookup, locks,
   the core's checks, the write statement, retries);
2. baseline — the same transfers as the simplest correct raw-SQL transfer, on plain tables of the
   same shape in schema `bench_baseline`: one database transaction that locks both account rows in
   id order, checks the balance, inserts the transaction, inserts its two entries and updates the
   two balances (1 and 2 alternate in rounds, so drifting machine load skews both alike);
3. batches — `post_batch` with `batch_size` transfers per call, from `batch_workers` threads.

Then SQL proves the run: debits equal credits per unit; every cached balance equals its entries and
what the workload says it must be; the tenant holds exactly the transactions sent, each key once;
no wallet is below zero. Each run uses a fresh tenant, so it can run against a development database.

The result is one JSON line (`LedgerBenchResult.to_json`).
"""

from __future__ import annotations

import gc
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Engine

from tally.adapters.ids import new_id
from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.ledger_accounts import AccountInput, create_account
from tally.app.post_ledger_transactions import EntryInput, TransactionInput, post_batch, post_transaction
from tally.app.tenants import create_tenant
from tally.bench.stats import percentile
from tally.bootstrap import Tally, build
from tally.core.ledger.model import TRANSACTIONS_PER_BATCH_MAX, AccountType, Direction
from tally.settings import Settings

TRANSFERS_MAX = 1_000_000
WORKERS_MAX = 32  # the baseline opens one connection per worker, next to tally's pool of as many
ACCOUNTS_MAX = 100_000
BATCH_SIZE_MAX = TRANSACTIONS_PER_BATCH_MAX
UNIT = "USD"
# Every wallet starts with far more than it can lose, so no transfer is refused for want of funds:
# the benchmark measures posting, not rejections (which it would report as a failure).
TRANSFER_AMOUNT_MAX = 10_000
WALLET_FUNDING = 10_000_000_000
# Untimed transfers per worker before each timed run: connections opened, statements prepared.
WARMUP_TRANSFERS_PER_WORKER = 20
# The single-transfer runs (tally's and the baseline's) alternate in this many rounds.
ROUNDS = 4

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerBenchOptions:
    transfers: int = 20_000
    workers: int = 8
    accounts: int = 1_000
    batch_size: int = BATCH_SIZE_MAX
    # Batches of random transfers among the same wallets all touch most of them, so they queue on the
    # account locks whatever the concurrency: a second worker preparing the next batch while the first
    # holds the locks is all that helps, and more only compete for the GIL with the lock holder.
    batch_workers: int = 2
    database_url: str | None = None
    seed: int = 1

    def __post_init__(self) -> None:
        limits = (
            ("transfers", self.transfers, 1, TRANSFERS_MAX),
            ("workers", self.workers, 1, WORKERS_MAX),
            ("accounts", self.accounts, 2, ACCOUNTS_MAX),
            ("batch_size", self.batch_size, 1, BATCH_SIZE_MAX),
            ("batch_workers", self.batch_workers, 1, WORKERS_MAX),
        )
        for name, value, low, high in limits:
            if not low <= value <= high:
                raise ValueError(f"{name} must be {low} to {high}, not {value}")


@dataclass(frozen=True, slots=True)
class LedgerBenchResult:
    transfers: int
    workers: int
    transfers_per_s: float
    baseline_per_s: float
    batch_transfers_per_s: float
    p99_ms: float
    conserved: bool
    duplicates: int
    negative_balances: int

    @property
    def ratio(self) -> float:
        return self.transfers_per_s / self.baseline_per_s

    def to_json(self) -> str:
        return json.dumps(
            {
                "bench": "ledger",
                "transfers": self.transfers,
                "workers": self.workers,
                "transfers_per_s": round(self.transfers_per_s, 1),
                "baseline_per_s": round(self.baseline_per_s, 1),
                "ratio": round(self.ratio, 3),
                "batch_transfers_per_s": round(self.batch_transfers_per_s, 1),
                "p99_ms": round(self.p99_ms, 2),
                "conserved": self.conserved,
                "duplicates": self.duplicates,
                "negative_balances": self.negative_balances,
            },
            separators=(",", ":"),
        )


@dataclass(frozen=True, slots=True)
class Transfer:
    """Move `amount` from wallet number `debit` to wallet number `credit`."""

    key: str
    debit: int
    credit: int
    amount: int


def run(options: LedgerBenchOptions) -> LedgerBenchResult:
    overrides: dict[str, Any] = {"database_pool_size": max(options.workers, 10)}
    if options.database_url:
        overrides["database_url"] = options.database_url
    tally = build(Settings(**overrides))
    try:
        return _run(tally, options)
    finally:
        gc.unfreeze()
        tally.close()


def _run(tally: Tally, options: LedgerBenchOptions) -> LedgerBenchResult:
    rng = random.Random(options.seed)
    tenant_id = create_tenant(tally.engine, f"bench-ledger-{uuid.uuid4().hex[:12]}")
    source, wallets = _create_accounts(tally, tenant_id, options.accounts, options.workers)
    funding = [Transfer(f"fund-{index}", -1, index, WALLET_FUNDING) for index in range(options.accounts)]
    for start in range(0, len(funding), TRANSACTIONS_PER_BATCH_MAX):
        _post_batch(tally, tenant_id, source, wallets, funding[start : start + TRANSACTIONS_PER_BATCH_MAX])

    def workload(prefix: str, count: int) -> list[Transfer]:
        return _random_transfers(rng, prefix, count, options.accounts)

    warmup_count = WARMUP_TRANSFERS_PER_WORKER * options.workers
    sent: list[Transfer] = [*funding]

    baseline = _Baseline(tally.database_url, tenant_id, options.accounts)
    baseline.create_tables()
    baseline.fund(funding)

    def tally_worker(_: ExitStack) -> Callable[[Transfer], None]:
        def post_one(transfer: Transfer) -> None:
            post_transaction(tally.engine, tally.clock, tenant_id, _transaction(transfer, source, wallets))

        return post_one

    baseline_warmup, warmup = workload("baseline-warmup", warmup_count), workload("warmup", warmup_count)
    _in_threads(options.workers, _split(baseline_warmup, options.workers), baseline.worker)
    _in_threads(options.workers, _split(warmup, options.workers), tally_worker)
    # The same transfers for both, tally's under keys of their own, in alternating rounds so that a
    # machine whose load drifts during the run skews both the same way.
    baseline_timed = workload("single", options.transfers)
    single = [Transfer(f"single-{index}", t.debit, t.credit, t.amount) for index, t in enumerate(baseline_timed)]
    batches_sent = workload("batch", options.transfers)
    # The workloads are the harness's, not the system's: keep the garbage collector from walking
    # them again and again, which would charge their size to whoever allocates most.
    gc.collect()
    gc.freeze()
    baseline_seconds = single_seconds = 0.0
    latencies_ns: list[int] = []
    for round_number in range(ROUNDS):
        baseline_round, single_round = baseline_timed[round_number::ROUNDS], single[round_number::ROUNDS]
        seconds, _ = _in_threads(options.workers, _split(baseline_round, options.workers), baseline.worker)
        baseline_seconds += seconds
        seconds, latencies = _in_threads(options.workers, _split(single_round, options.workers), tally_worker)
        single_seconds += seconds
        latencies_ns += latencies
    baseline.verify([*funding, *baseline_warmup, *baseline_timed])
    sent += [*warmup, *single]

    batches = [
        batches_sent[start : start + options.batch_size] for start in range(0, options.transfers, options.batch_size)
    ]

    def batch_worker(_: ExitStack) -> Callable[[list[Transfer]], None]:
        return lambda batch: _post_batch(tally, tenant_id, source, wallets, batch)

    batch_seconds, _ = _in_threads(options.batch_workers, _split(batches, options.batch_workers), batch_worker)
    sent += batches_sent

    check = _verify(tally.engine, tenant_id, source, wallets, sent)
    return LedgerBenchResult(
        transfers=options.transfers,
        workers=options.workers,
        transfers_per_s=options.transfers / single_seconds,
        baseline_per_s=options.transfers / baseline_seconds,
        batch_transfers_per_s=options.transfers / batch_seconds,
        p99_ms=percentile(latencies_ns, 99) / 1_000_000,
        conserved=check.conserved,
        duplicates=check.duplicates,
        negative_balances=check.negative_balances,
    )


def _random_transfers(rng: random.Random, prefix: str, count: int, accounts: int) -> list[Transfer]:
    transfers = []
    for index in range(count):
        debit = rng.randrange(accounts)
        credit = rng.randrange(accounts - 1)
        credit += credit >= debit  # any other wallet, uniformly
        transfers.append(Transfer(f"{prefix}-{index}", debit, credit, rng.randint(1, TRANSFER_AMOUNT_MAX)))
    return transfers


def _create_accounts(tally: Tally, tenant_id: uuid.UUID, count: int, workers: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    source, _ = create_account(tally.engine, tenant_id, AccountInput(code="opening_balance_equity", unit_code=UNIT))
    wallets: list[uuid.UUID | None] = [None] * count

    def create(index: int) -> None:
        account, _ = create_account(
            tally.engine,
            tenant_id,
            AccountInput(code=f"wallet.w{index:06d}", unit_code=UNIT, type=AccountType.LIABILITY, minimum_balance=0),
        )
        wallets[index] = account.id

    _in_threads(workers, _split(list(range(count)), workers), lambda _: create)
    return source.id, [wallet for wallet in wallets if wallet is not None]


def _transaction(transfer: Transfer, source: uuid.UUID, wallets: Sequence[uuid.UUID]) -> TransactionInput:
    """Wallets are liabilities: a debit takes money out, a credit puts it in. -1 is the funding source."""
    debit = source if transfer.debit < 0 else wallets[transfer.debit]
    return TransactionInput(
        idempotency_key=transfer.key,
        entries=(
            EntryInput(account_id=debit, direction=Direction.DEBIT, amount=transfer.amount),
            EntryInput(account_id=wallets[transfer.credit], direction=Direction.CREDIT, amount=transfer.amount),
        ),
    )


def _post_batch(
    tally: Tally, tenant_id: uuid.UUID, source: uuid.UUID, wallets: Sequence[uuid.UUID], batch: Sequence[Transfer]
) -> None:
    outcomes = post_batch(
        tally.engine, tally.clock, tenant_id, [_transaction(transfer, source, wallets) for transfer in batch]
    )
    refused = [outcome.rejection for outcome in outcomes if outcome.rejection is not None]
    if refused:
        raise RuntimeError(f"{len(refused)} transfers refused, e.g. {refused[0]}")


def _split(items: Sequence[T], parts: int) -> list[list[T]]:
    return [list(items[part::parts]) for part in range(parts)]


def _in_threads(
    workers: int, shares: Sequence[Sequence[T]], make_worker: Callable[[ExitStack], Callable[[T], None]]
) -> tuple[float, list[int]]:
    """Run each share in its own thread; return the wall time from a common start, and per-item latencies.

    Each thread builds its worker (opening what it needs on the exit stack) before the clock starts.
    """
    barrier = threading.Barrier(workers + 1)
    latencies_ns: list[list[int]] = [[] for _ in range(workers)]
    failures: list[BaseException] = []

    def body(number: int) -> None:
        with ExitStack() as resources:
            try:
                work = make_worker(resources)
            except BaseException as error:
                failures.append(error)
                barrier.abort()
                return
            try:
                barrier.wait()
                for item in shares[number]:
                    started = time.perf_counter_ns()
                    work(item)
                    latencies_ns[number].append(time.perf_counter_ns() - started)
            except BaseException as error:
                failures.append(error)
                barrier.abort()

    threads = [threading.Thread(target=body, args=(number,), daemon=True) for number in range(workers)]
    for thread in threads:
        thread.start()
    with suppress(threading.BrokenBarrierError):  # a worker failed to start; its error is reported below
        barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} worker(s) failed") from failures[0]
    return elapsed, [latency for share in latencies_ns for latency in share]


@dataclass(frozen=True, slots=True)
class _Check:
    conserved: bool
    duplicates: int
    negative_balances: int


def _expected_balances(
    source: uuid.UUID, wallets: Sequence[uuid.UUID], sent: Sequence[Transfer]
) -> dict[uuid.UUID, tuple[int, int]]:
    """(debits_posted, credits_posted) per account after every transfer in `sent` posted once."""
    debits = [0] * (len(wallets) + 1)  # the last slot is the source (index -1)
    credits = [0] * (len(wallets) + 1)
    for transfer in sent:
        debits[transfer.debit] += transfer.amount
        credits[transfer.credit] += transfer.amount
    return {account: (debits[index], credits[index]) for index, account in enumerate([*wallets, source])}


def _verify(
    engine: Engine, tenant_id: uuid.UUID, source: uuid.UUID, wallets: Sequence[uuid.UUID], sent: Sequence[Transfer]
) -> _Check:
    expected = _expected_balances(source, wallets, sent)
    with psycopg_transaction(engine) as connection:
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        per_unit = connection.execute(
            """SELECT unit_code, sum(amount) FILTER (WHERE direction = 'debit'),
                      sum(amount) FILTER (WHERE direction = 'credit')
               FROM ledger_entries WHERE tenant_id = %s GROUP BY unit_code""",
            (tenant_id,),
        ).fetchall()
        from_entries = {
            row[0]: (int(row[1]), int(row[2]))
            for row in connection.execute(
                """SELECT account_id,
                          coalesce(sum(amount) FILTER (WHERE direction = 'debit' AND phase = 'posted'), 0),
                          coalesce(sum(amount) FILTER (WHERE direction = 'credit' AND phase = 'posted'), 0)
                   FROM ledger_entries WHERE tenant_id = %s GROUP BY account_id""",
                (tenant_id,),
            )
        }
        cached = {
            row[0]: (row[1], row[2], row[3], row[4])
            for row in connection.execute(
                """SELECT id, debits_posted, credits_posted, debits_pending, credits_pending
                   FROM ledger_accounts WHERE tenant_id = %s""",
                (tenant_id,),
            )
        }
        keys = {
            row[0]: row[1]
            for row in connection.execute(
                "SELECT idempotency_key, count(*) FROM ledger_transactions WHERE tenant_id = %s GROUP BY 1",
                (tenant_id,),
            )
        }
        negative = connection.execute(
            """SELECT count(*) FROM ledger_accounts WHERE tenant_id = %s AND minimum_balance IS NOT NULL AND
                   CASE normal_balance WHEN 'debit' THEN debits_posted - credits_posted - credits_pending
                        ELSE credits_posted - debits_posted - debits_pending END < 0""",
            (tenant_id,),
        ).fetchone()
    balanced = bool(per_unit) and all(debits == credits for _, debits, credits in per_unit)
    balances_match = all(
        cached.get(account) == (*balances, 0, 0) and from_entries.get(account) == balances
        for account, balances in expected.items()
    ) and len(cached) == len(expected)
    exactly_the_keys_sent = set(keys) == {transfer.key for transfer in sent}
    return _Check(
        conserved=balanced and balances_match and exactly_the_keys_sent,
        duplicates=sum(count - 1 for count in keys.values()),
        negative_balances=int(negative[0]) if negative else 0,
    )


class _Baseline:
    """The simplest correct raw-SQL transfer, for comparison: plain tables, psycopg, one connection per worker."""

    SCHEMA = """
        CREATE SCHEMA IF NOT EXISTS bench_baseline;
        CREATE TABLE IF NOT EXISTS bench_baseline.accounts (
            id              uuid PRIMARY KEY,
            tenant_id       uuid NOT NULL,
            unit_code       text NOT NULL,
            minimum_balance bigint,
            debits_posted   bigint NOT NULL DEFAULT 0,
            credits_posted  bigint NOT NULL DEFAULT 0,
            CHECK (minimum_balance IS NULL OR credits_posted - debits_posted >= minimum_balance)
        );
        CREATE TABLE IF NOT EXISTS bench_baseline.transactions (
            id               uuid PRIMARY KEY,
            tenant_id        uuid NOT NULL,
            idempotency_key  text NOT NULL,
            effective_at     timestamptz NOT NULL,
            recorded_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
            description      text NOT NULL DEFAULT '',
            metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
            UNIQUE (tenant_id, idempotency_key)
        );
        CREATE TABLE IF NOT EXISTS bench_baseline.entries (
            id              uuid PRIMARY KEY,
            tenant_id       uuid NOT NULL,
            transaction_id  uuid NOT NULL REFERENCES bench_baseline.transactions (id),
            entry_index     smallint NOT NULL,
            account_id      uuid NOT NULL REFERENCES bench_baseline.accounts (id),
            direction       text NOT NULL,
            amount          bigint NOT NULL CHECK (amount > 0),
            unit_code       text NOT NULL,
            effective_at    timestamptz NOT NULL
        );
        CREATE INDEX IF NOT EXISTS entries_account ON bench_baseline.entries (account_id, effective_at);
    """

    def __init__(self, url: str, tenant_id: uuid.UUID, wallet_count: int) -> None:
        self.url = url
        self.tenant_id = tenant_id
        # Fresh ids: the same wallets by number, in tables of their own.
        self.source = new_id()
        self.wallets = [new_id() for _ in range(wallet_count)]

    def create_tables(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute("SELECT pg_advisory_lock(hashtext('tally.bench_baseline'))")
            connection.execute(self.SCHEMA)
            connection.execute(
                "INSERT INTO bench_baseline.accounts (id, tenant_id, unit_code) VALUES (%s, %s, %s)",
                (self.source, self.tenant_id, UNIT),
            )
            connection.execute(
                """INSERT INTO bench_baseline.accounts (id, tenant_id, unit_code, minimum_balance)
                   SELECT unnest(%s::uuid[]), %s, %s, 0""",
                (self.wallets, self.tenant_id, UNIT),
            )

    def fund(self, funding: Sequence[Transfer]) -> None:
        with psycopg.connect(self.url) as connection:
            for transfer in funding:
                self._transfer(connection, transfer)

    def worker(self, resources: ExitStack) -> Callable[[Transfer], None]:
        connection = resources.enter_context(psycopg.connect(self.url))
        return lambda transfer: self._transfer(connection, transfer)

    def _transfer(self, connection: psycopg.Connection[Any], transfer: Transfer) -> None:
        debit = self.source if transfer.debit < 0 else self.wallets[transfer.debit]
        credit = self.wallets[transfer.credit]
        with connection.transaction():
            balances = dict(
                connection.execute(
                    """SELECT id, credits_posted - debits_posted FROM bench_baseline.accounts
                       WHERE id = ANY(%s) ORDER BY id FOR UPDATE""",
                    (sorted((debit, credit)),),
                ).fetchall()
            )
            if debit != self.source and balances[debit] < transfer.amount:  # the floor: 0
                raise RuntimeError(f"baseline transfer {transfer.key} refused: insufficient funds")
            transaction_id = new_id()
            now = datetime.now(UTC)
            connection.execute(
                """INSERT INTO bench_baseline.transactions (id, tenant_id, idempotency_key, effective_at)
                   VALUES (%s, %s, %s, %s)""",
                (transaction_id, self.tenant_id, transfer.key, now),
            )
            connection.execute(
                """INSERT INTO bench_baseline.entries
                       (id, tenant_id, transaction_id, entry_index, account_id, direction, amount, unit_code,
                        effective_at)
                   VALUES (%s, %s, %s, 0, %s, 'debit', %s, %s, %s), (%s, %s, %s, 1, %s, 'credit', %s, %s, %s)""",
                (
                    *(new_id(), self.tenant_id, transaction_id, debit, transfer.amount, UNIT, now),
                    *(new_id(), self.tenant_id, transaction_id, credit, transfer.amount, UNIT, now),
                ),
            )
            connection.execute(
                "UPDATE bench_baseline.accounts SET debits_posted = debits_posted + %s WHERE id = %s",
                (transfer.amount, debit),
            )
            connection.execute(
                "UPDATE bench_baseline.accounts SET credits_posted = credits_posted + %s WHERE id = %s",
                (transfer.amount, credit),
            )

    def verify(self, sent: Sequence[Transfer]) -> None:
        """The baseline must be correct too, or the comparison means nothing."""
        expected = _expected_balances(self.source, self.wallets, sent)
        with psycopg.connect(self.url) as connection:
            found = {
                row[0]: (row[1], row[2])
                for row in connection.execute(
                    "SELECT id, debits_posted, credits_posted FROM bench_baseline.accounts WHERE tenant_id = %s",
                    (self.tenant_id,),
                )
            }
        if found != expected:
            raise RuntimeError("the baseline's balances do not match its workload")
