"""One worker process of the bank test (`tests/app/test_bank.py`): a client that may die at any moment.

It performs operations 0..N-1. Operation n is fully determined by (seed, worker, n): a transfer
between two wallets, a small batch of them, or a retry of a key this worker was already given an
answer for. Idempotency keys are derived from (worker, n), so a restarted worker that retries its
in-flight operation sends exactly what it sent before.

After each answer it appends one JSON line to its log and fsyncs it: the log is what the client
knows was acknowledged. On start it reads the log (dropping a torn last line) and resumes at the
first operation without a record — the one in flight when it was killed, if any.

`--crash-after-commit-at N` kills the process itself (SIGKILL) right after the first transfer at or
after operation N that posted, before the answer reaches the log: the nastiest moment for a client.

Exit codes: 0 done; 3 an invariant the client can see was broken (the message is on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

from tally.adapters.clock import SystemClock
from tally.adapters.postgres.database import make_engine
from tally.app.post_ledger_transactions import EntryInput, Outcome, TransactionInput, post_batch, post_transaction
from tally.core.ledger.model import Direction
from tally.core.rejections import Rejected

RETRY_SHARE = 0.15  # operations that resend an acknowledged key with the same content
CONFLICT_SHARE = 0.03  # operations that resend an acknowledged key with a different amount
BATCH_SHARE = 0.12  # operations that send a batch
BATCH_SIZE_MAX = 6
AMOUNT_MAX = 400


class Broken(Exception):
    """What the client saw contradicts the ledger's promises."""


def transfer_input(key: str, debit: uuid.UUID, credit: uuid.UUID, amount: int) -> TransactionInput:
    return TransactionInput(
        idempotency_key=key,
        entries=(
            EntryInput(account_id=debit, direction=Direction.DEBIT, amount=amount),
            EntryInput(account_id=credit, direction=Direction.CREDIT, amount=amount),
        ),
    )


def read_log(path: Path) -> list[dict[str, Any]]:
    """The complete records; a torn last line (killed mid-write) is cut off so appends stay whole."""
    if not path.exists():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with path.open("r+b") as file:
            file.truncate(len(complete))
    return [json.loads(line) for line in complete.decode().splitlines()]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--setup", type=Path, required=True)
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--operations", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--crash-after-commit-at", type=int, default=-1)
    args = parser.parse_args()

    setup = json.loads(args.setup.read_text())
    tenant_id = uuid.UUID(setup["tenant_id"])
    wallets = [uuid.UUID(wallet) for wallet in setup["wallets"]]
    engine = make_engine(args.database_url, pool_size=1)
    clock = SystemClock()

    records = read_log(args.log)
    # key → (transaction id, debit, credit, amount) of every transfer this client saw accepted.
    accepted: dict[str, tuple[str, int, int, int]] = {}
    for record in records:
        for result in record["results"]:
            if result["status"] in ("posted", "replayed"):
                accepted[result["key"]] = (result["id"], result["debit"], result["credit"], result["amount"])
    first = records[-1]["op"] + 1 if records else 0
    crash_armed = args.crash_after_commit_at >= 0

    with args.log.open("a") as log:

        def acknowledge(operation: int, results: list[dict[str, Any]]) -> None:
            log.write(json.dumps({"op": operation, "results": results}) + "\n")
            log.flush()
            os.fsync(log.fileno())

        for operation in range(first, args.operations):
            rng = random.Random(f"{args.seed}:{args.worker}:{operation}")
            roll = rng.random()
            if roll < RETRY_SHARE + CONFLICT_SHARE and accepted:
                key = rng.choice(sorted(accepted))
                transaction_id, debit, credit, amount = accepted[key]
                conflicting = roll >= RETRY_SHARE
                resent = transfer_input(key, wallets[debit], wallets[credit], amount + (1 if conflicting else 0))
                try:
                    outcome = post_transaction(engine, clock, tenant_id, resent)
                except Rejected as rejected:
                    if conflicting and rejected.rejection.code == "exists_with_different_amount":
                        acknowledge(operation, [{"key": key, "status": "conflict_refused"}])
                        continue
                    raise Broken(f"resending {key} was refused: {rejected.rejection}") from rejected
                if conflicting:
                    raise Broken(f"resending {key} with another amount was accepted")
                if not outcome.replayed or str(outcome.unwrap().id) != transaction_id:
                    raise Broken(f"resending {key} did not replay {transaction_id}: {outcome}")
                acknowledge(operation, [{"key": key, "status": "resent", "id": transaction_id}])
                continue

            size = rng.randint(2, BATCH_SIZE_MAX) if roll > 1 - BATCH_SHARE else 1
            transfers = []
            for index in range(size):
                debit, credit = rng.sample(range(len(wallets)), 2)
                key = f"w{args.worker}-op{operation}" + (f"-{index}" if size > 1 else "")
                transfers.append((key, debit, credit, rng.randint(1, AMOUNT_MAX)))
            inputs = [
                transfer_input(key, wallets[debit], wallets[credit], amount) for key, debit, credit, amount in transfers
            ]
            codes = [""] * size
            outcomes: list[Outcome | None]
            if size == 1:
                try:
                    outcomes = [post_transaction(engine, clock, tenant_id, inputs[0])]
                except Rejected as rejected:
                    outcomes, codes = [None], [rejected.rejection.code]
            else:
                batch = post_batch(engine, clock, tenant_id, inputs)
                outcomes = [outcome if outcome.rejection is None else None for outcome in batch]
                codes = [outcome.rejection.code if outcome.rejection else "" for outcome in batch]

            results = []
            for index, ((key, debit, credit, amount), outcome) in enumerate(zip(transfers, outcomes, strict=True)):
                result: dict[str, Any] = {"key": key, "debit": debit, "credit": credit, "amount": amount}
                if outcome is None:
                    if codes[index] != "balance_must_not_fall_below_minimum":
                        raise Broken(f"{key} refused unexpectedly: {codes[index]}")
                    result["status"] = "refused"
                else:
                    transaction = outcome.unwrap()
                    result["status"] = "replayed" if outcome.replayed else "posted"
                    result["id"] = str(transaction.id)
                    accepted[key] = (result["id"], debit, credit, amount)
                results.append(result)

            if crash_armed and operation >= args.crash_after_commit_at and results[0]["status"] == "posted":
                os.kill(os.getpid(), signal.SIGKILL)  # committed, not yet acknowledged to the client
            acknowledge(operation, results)
    engine.dispose()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Broken as broken:
        print(f"BROKEN: {broken}", file=sys.stderr)
        sys.exit(3)
