"""The `tally ledger` commands end to end, against the test database."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tally.app.audit import latest_audit_entries
from tally.app.tenants import create_tenant, find_tenants_by_name
from tally.bootstrap import Tally
from tally.cli import app


@pytest.fixture
def run(database_url: str, tally: Tally):
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    create_tenant(tally.engine, tenant)
    runner = CliRunner()

    def invoke(*arguments: str) -> tuple[int, str]:
        result = runner.invoke(
            app,
            list(arguments),
            env={"TALLY_DATABASE_URL": database_url, "TALLY_TENANT": tenant, "COLUMNS": "200"},
        )
        return result.exit_code, result.output

    invoke.tenant = tenant  # type: ignore[attr-defined]
    return invoke


def _account(output: str) -> str:
    found = re.search(r"acct_[0-9a-z]{26}", output)
    assert found, output
    return found.group(0)


def test_accounts_post_replay_reverse_and_check(run, tmp_path: Path, tally: Tally) -> None:
    code, output = run(
        "ledger", "accounts", "create", "wallet.alice", "--unit", "USD", "--type", "liability", "--minimum-balance", "0"
    )
    assert code == 0 and "created" in output
    alice = _account(output)
    code, output = run("ledger", "accounts", "create", "opening_balance_equity", "--unit", "USD")
    equity = _account(output)

    code, output = run("ledger", "post", "--key", "fund", "--debit", f"{equity}=10.00", "--credit", f"{alice}=10.00")
    assert code == 0 and "1,000" in output
    code, output = run("ledger", "post", "--key", "fund", "--debit", f"{equity}=10.00", "--credit", f"{alice}=10.00")
    assert code == 0 and "replayed" in output
    code, output = run("ledger", "post", "--key", "fund", "--debit", f"{equity}=11.00", "--credit", f"{alice}=11.00")
    assert code == 1 and "exists_with_different_amount" in output
    code, output = run("ledger", "post", "--key", "x", "--debit", f"{alice}=10.001", "--credit", f"{equity}=10.001")
    assert code == 1 and "amount_exceeds_unit_precision" in output
    code, output = run("ledger", "post", "--key", "y", "--debit", f"{alice}=1001", "--credit", f"{equity}=1001")
    assert code == 1 and "balance_must_not_fall_below_minimum" in output

    code, output = run("ledger", "balance", alice)
    assert code == 0 and "posted 1,000" in output

    batch = tmp_path / "batch.json"
    batch.write_text(
        json.dumps(
            [
                {
                    "idempotency_key": "b1",
                    "entries": [
                        {"account_id": alice, "direction": "debit", "amount": 400},
                        {"account_id": equity, "direction": "credit", "amount": 400},
                    ],
                },
                {
                    "idempotency_key": "b2",
                    "entries": [
                        {"account_id": alice, "direction": "debit", "amount": 700},
                        {"account_id": equity, "direction": "credit", "amount": 700},
                    ],
                },
            ]
        )
    )
    code, output = run("ledger", "post-file", str(batch))
    assert code == 1 and "posted" in output and "balance_must_not_fall_below_minimum" in output

    transaction = re.search(r"txn_[0-9a-z]{26}", output)
    assert transaction
    code, output = run("ledger", "reverse", transaction.group(0), "--key", "undo-b1")
    assert code == 0 and "reversal" in output
    code, output = run("ledger", "balance", alice)
    assert "posted 1,000" in output

    code, output = run("ledger", "balances", "--group-by", "code")
    assert code == 0 and "wallet.alice" in output
    code, output = run("ledger", "entries", "--account", alice)
    assert code == 0 and output.count("USD") == 3  # funding, b1, its reversal
    tenant_id = find_tenants_by_name(tally.engine, run.tenant)[0].id
    actions = [entry.action for entry in latest_audit_entries(tally.engine, tenant_id)]
    assert actions.count("tally ledger post") == 1  # the replay and the refusals are not changes
    assert {"tally ledger accounts create", "tally ledger post-file", "tally ledger reverse"} <= set(actions)
    # Other tests tamper with their own tenants on purpose: check only this one.
    code, output = run("ledger", "check", "--tenant", run.tenant)
    assert code == 0 and "0 discrepancies" in output


def test_unknown_tenant_is_a_clear_error(run) -> None:
    code, output = run("ledger", "balances", "--tenant", "no-such-tenant")
    assert code == 1 and "tenant_not_found" in output
