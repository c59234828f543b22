"""The bank test: the ledger under concurrency, client retries and crashes.

Eight worker processes (`tests/app/bank_worker.py`) move money at random between wallets that must
not go negative, resend keys they already had answers for, and send small batches. The parent kills
some of them with SIGKILL at random moments and restarts them; two also kill themselves right after
a commit, before the answer reaches them. A restarted worker resends its in-flight operation.

At the end, from the database itself: money is conserved exactly; every acknowledged transfer is
there exactly once, with the acknowledged id and amount; nothing is there that no client was told
about; no wallet is below zero; the integrity check finds nothing. A second test hammers one pair
of accounts from many threads in opposite directions: no deadlock escapes tally, no update is lost.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tally.adapters.postgres.connections import psycopg_transaction
from tally.app.check_ledger_integrity import run_integrity_check
from tally.app.post_ledger_transactions import post_batch, post_transaction
from tally.bootstrap import Tally
from tally.core.rejections import Rejected
from tests.ledger_helpers import funding, transfer, wallet

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 8
WALLETS = 20
WALLET_FUNDING = 1_000
OPERATIONS_PER_WORKER = 150
SELF_CRASHING_WORKERS = (1, 5)
PARENT_KILLS = 6
STARTUP_S = 1.0  # a worker younger than this is probably still importing; killing it proves little
DEADLINE_S = 240  # only a hang should come near it: the test takes 10-20 s on a quiet 2-core machine


@dataclass
class WorkerProcess:
    number: int
    log: Path
    stderr: Path
    process: subprocess.Popen[bytes] | None = None
    incarnation: int = -1
    started_at: float = 0.0
    done: bool = False
    killed_by_parent: bool = False  # this incarnation
    crashed_itself: bool = False


def _start(worker: WorkerProcess, database_url: str, setup: Path, seed: int) -> None:
    worker.incarnation += 1
    command = [
        sys.executable,
        "-m",
        "tests.app.bank_worker",
        *("--database-url", database_url, "--setup", str(setup), "--worker", str(worker.number)),
        *("--seed", str(seed), "--operations", str(OPERATIONS_PER_WORKER), "--log", str(worker.log)),
    ]
    worker.killed_by_parent = False
    if worker.number in SELF_CRASHING_WORKERS and not worker.crashed_itself:
        command += ["--crash-after-commit-at", str(10 + 7 * worker.number)]
    with worker.stderr.open("ab") as stderr:
        worker.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
    worker.started_at = time.monotonic()


def _run_workers(workers: list[WorkerProcess], database_url: str, setup: Path, seed: int) -> int:
    """Run every worker to completion, restarting the killed ones; return how many the parent killed."""
    rng = random.Random(seed)
    for worker in workers:
        _start(worker, database_url, setup, seed)
    deadline = time.monotonic() + DEADLINE_S
    next_kill_at = time.monotonic() + STARTUP_S + rng.uniform(0.2, 1.0)
    parent_kills = 0
    try:
        while not all(worker.done for worker in workers):
            assert time.monotonic() < deadline, f"bank test workers did not finish in {DEADLINE_S}s (seed {seed})"
            for worker in workers:
                if worker.done or worker.process is None or (code := worker.process.poll()) is None:
                    continue
                if code == 0:
                    worker.done = True
                elif code == -signal.SIGKILL:
                    worker.crashed_itself |= not worker.killed_by_parent
                    _start(worker, database_url, setup, seed)
                else:
                    pytest.fail(f"worker {worker.number} exited {code} (seed {seed}): {worker.stderr.read_text()}")
            now = time.monotonic()
            if parent_kills < PARENT_KILLS and now >= next_kill_at:
                running = [
                    w for w in workers if not w.done and w.process is not None and now - w.started_at > STARTUP_S
                ]
                if running:
                    victim = rng.choice(running)
                    assert victim.process is not None
                    victim.process.send_signal(signal.SIGKILL)
                    victim.killed_by_parent = True
                    parent_kills += 1
                next_kill_at = now + rng.uniform(0.3, 1.2)
            time.sleep(0.02)
    finally:
        for worker in workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()
    return parent_kills


def _read_logs(workers: list[WorkerProcess]) -> list[tuple[int, dict[str, Any]]]:
    records = []
    for worker in workers:
        for line in worker.log.read_text().splitlines():
            records.append((worker.number, json.loads(line)))
    return records


@pytest.mark.slow
@pytest.mark.timeout(DEADLINE_S + 60)
def test_bank_conserves_money_and_posts_every_acknowledged_transfer_exactly_once(
    tally: Tally, tenant_id: uuid.UUID, database_url: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("TALLY_BANK_SEED", random.randrange(1_000_000)))
    source = funding(tally, tenant_id)
    wallets = [wallet(tally, tenant_id, f"w{index:02d}") for index in range(WALLETS)]
    funded = post_batch(
        tally.engine,
        tally.clock,
        tenant_id,
        [transfer(f"fund-{index}", source, account, WALLET_FUNDING) for index, account in enumerate(wallets)],
    )
    assert all(outcome.rejection is None for outcome in funded)
    setup = tmp_path / "setup.json"
    setup.write_text(json.dumps({"tenant_id": str(tenant_id), "wallets": [str(account.id) for account in wallets]}))
    workers = [
        WorkerProcess(number, tmp_path / f"worker-{number}.log", tmp_path / f"worker-{number}.err")
        for number in range(WORKERS)
    ]

    parent_kills = _run_workers(workers, database_url, setup, seed)

    # What the clients were told.
    acknowledged: dict[str, tuple[str, int, int, int]] = {}
    refused: set[str] = set()
    resent: list[tuple[str, str]] = []
    replayed_after_crash = set()
    for number, record in _read_logs(workers):
        for result in record["results"]:
            status = result["status"]
            if status in ("posted", "replayed"):
                assert result["key"] not in acknowledged, result
                acknowledged[result["key"]] = (result["id"], result["debit"], result["credit"], result["amount"])
                if status == "replayed":  # only an operation in flight when its worker died replays
                    replayed_after_crash.add(number)
            elif status == "refused":
                refused.add(result["key"])
            elif status == "resent":
                resent.append((result["key"], result["id"]))
    assert set(SELF_CRASHING_WORKERS) <= replayed_after_crash, "a commit the client never saw must replay"
    assert parent_kills >= 1
    assert all(acknowledged[key][0] == transaction_id for key, transaction_id in resent)
    assert len(acknowledged) > WORKERS * OPERATIONS_PER_WORKER // 3, "too few transfers succeeded to prove much"

    # What the database holds.
    with psycopg_transaction(tally.engine) as connection:
        stored = connection.execute(
            """SELECT t.idempotency_key, t.id::text, count(*) OVER (PARTITION BY t.idempotency_key),
                      d.account_id, c.account_id, d.amount, c.amount
               FROM ledger_transactions t
               JOIN ledger_entries d ON d.transaction_id = t.id AND d.direction = 'debit'
               JOIN ledger_entries c ON c.transaction_id = t.id AND c.direction = 'credit'
               WHERE t.tenant_id = %s AND t.idempotency_key NOT LIKE 'fund-%%'""",
            (tenant_id,),
        ).fetchall()
        per_unit = connection.execute(
            """SELECT unit_code, sum(amount) FILTER (WHERE direction = 'debit'),
                      sum(amount) FILTER (WHERE direction = 'credit')
               FROM ledger_entries WHERE tenant_id = %s GROUP BY unit_code""",
            (tenant_id,),
        ).fetchall()
        balances = dict(
            connection.execute(
                """SELECT id, credits_posted - debits_posted - debits_pending FROM ledger_accounts
                   WHERE tenant_id = %s""",
                (tenant_id,),
            ).fetchall()
        )

    by_key = {row[0]: row for row in stored}
    assert len(by_key) == len(stored), "an idempotency key is stored twice"
    assert set(by_key) == set(acknowledged), (
        f"stored but never acknowledged: {sorted(set(by_key) - set(acknowledged))[:5]}; "
        f"acknowledged but missing: {sorted(set(acknowledged) - set(by_key))[:5]} (seed {seed})"
    )
    assert not refused & set(by_key)
    for key, (transaction_id, debit, credit, amount) in acknowledged.items():
        _, stored_id, copies, debit_account, credit_account, debit_amount, credit_amount = by_key[key]
        assert (stored_id, copies) == (transaction_id, 1), key
        assert (debit_account, credit_account) == (wallets[debit].id, wallets[credit].id), key
        assert debit_amount == credit_amount == amount, key

    assert per_unit == [("USD", per_unit[0][1], per_unit[0][1])], "debits must equal credits"
    expected = {account.id: WALLET_FUNDING for account in wallets}
    for _, debit, credit, amount in acknowledged.values():
        expected[wallets[debit].id] -= amount
        expected[wallets[credit].id] += amount
    assert {account.id: balances[account.id] for account in wallets} == expected
    assert sum(balances[account.id] for account in wallets) == WALLETS * WALLET_FUNDING
    assert balances[source.id] == -WALLETS * WALLET_FUNDING
    assert min(balances[account.id] for account in wallets) >= 0

    report = run_integrity_check(tally.engine, tally.clock, tenant_id)
    assert report.discrepancy_count == 0, report.discrepancies


@pytest.mark.slow
def test_a_hot_pair_of_accounts_under_opposite_transfers_neither_deadlocks_nor_loses_updates(
    tally: Tally, tenant_id: uuid.UUID
) -> None:
    threads_count, transfers_per_thread, start_balance = 12, 40, 2_000
    source = funding(tally, tenant_id)
    alice, bob = wallet(tally, tenant_id, "alice"), wallet(tally, tenant_id, "bob")
    for account in (alice, bob):
        post_transaction(tally.engine, tally.clock, tenant_id, transfer(f"fund-{account.id}", source, account, 2_000))
    moved: list[list[tuple[bool, int]]] = [[] for _ in range(threads_count)]  # (alice → bob?, amount) accepted
    failures: list[BaseException] = []
    start = threading.Barrier(threads_count)

    def hammer(number: int) -> None:
        rng = random.Random(number)
        try:
            start.wait()
            for index in range(transfers_per_thread):
                alice_to_bob = (number + index) % 2 == 0
                debit, credit = (alice, bob) if alice_to_bob else (bob, alice)
                amount = rng.randint(1, 60)
                key = f"hot-{number}-{index}"
                if index % 10 == 9:  # now and then a batch, both directions, same two locks
                    outcomes = post_batch(
                        tally.engine,
                        tally.clock,
                        tenant_id,
                        [transfer(key + "-a", debit, credit, amount), transfer(key + "-b", credit, debit, amount)],
                    )
                    for outcome, direction in zip(outcomes, (alice_to_bob, not alice_to_bob), strict=True):
                        if outcome.rejection is None:
                            moved[number].append((direction, amount))
                        else:
                            assert outcome.rejection.code == "balance_must_not_fall_below_minimum"
                    continue
                try:
                    post_transaction(tally.engine, tally.clock, tenant_id, transfer(key, debit, credit, amount))
                except Rejected as rejected:
                    assert rejected.rejection.code == "balance_must_not_fall_below_minimum"
                else:
                    moved[number].append((alice_to_bob, amount))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=hammer, args=(number,)) for number in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures[0]

    accepted = [item for share in moved for item in share]
    net_to_bob = sum(amount if alice_to_bob else -amount for alice_to_bob, amount in accepted)
    with psycopg_transaction(tally.engine) as connection:
        balances = dict(
            connection.execute(
                "SELECT id, credits_posted - debits_posted FROM ledger_accounts WHERE id = ANY(%s)",
                ([alice.id, bob.id],),
            ).fetchall()
        )
        (stored,) = connection.execute(
            "SELECT count(*) FROM ledger_transactions WHERE tenant_id = %s AND idempotency_key LIKE 'hot-%%'",
            (tenant_id,),
        ).fetchone() or (0,)
    assert stored == len(accepted)
    assert balances == {alice.id: start_balance - net_to_bob, bob.id: start_balance + net_to_bob}
    assert run_integrity_check(tally.engine, tally.clock, tenant_id).ok
