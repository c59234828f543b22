"""Tally's own jobs: the ledger integrity check and the idempotency purge, and `tally jobs run-integrity-check`."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from dbos import WorkflowHandle
from prometheus_client import REGISTRY
from sqlalchemy import text
from typer.testing import CliRunner

from tally.adapters.clock import FixedClock
from tally.adapters.postgres.billing_batches import billing_run_lock
from tally.bootstrap import Tally, build
from tally.cli import jobs as jobs_cli
from tally.settings import Settings
from tally.worker import jobs, runtime
from tally.worker.enqueue import enqueue_once, workflow_id
from tests.worker.worker_testing import drop_database, fresh_database, wait_until, worker_settings

NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
INTEGRITY_MODULE = "tally.app.check_ledger_integrity"
IDEMPOTENCY_MODULE = "tally.app.idempotency"


@dataclass(frozen=True)
class FakeDiscrepancy:
    check: str
    object_id: str


@dataclass
class FakeReport:
    discrepancy_count: int
    discrepancies: list[Any] = field(default_factory=list)


@pytest.fixture(scope="module")
def jobs_tally(settings: Settings, database_url: str) -> Iterator[Tally]:
    system_url = fresh_database(database_url, "jobs")
    tally = build(
        worker_settings(settings, worker_system_database_url=system_url), migrate=False, clock=FixedClock(NOW)
    )
    runtime.start_in_background(tally)
    yield tally
    runtime.shutdown()
    tally.close()
    drop_database(system_url)


def fake_module(monkeypatch: pytest.MonkeyPatch, name: str, **attributes: Any) -> None:
    module = ModuleType(name)
    for attribute, value in attributes.items():
        setattr(module, attribute, value)
    monkeypatch.setitem(sys.modules, name, module)


def result_of(handle: WorkflowHandle[Any], timeout: float = 15.0) -> Any:
    wait_until(
        lambda: handle.get_status().status not in ("ENQUEUED", "PENDING", "DELAYED"),
        f"workflow {handle.get_workflow_id()} to finish",
        timeout=timeout,
    )
    status = handle.get_status()
    assert status.status == "SUCCESS", f"{status.status}: {status.error}"
    return handle.get_result()


def run_integrity_job() -> Any:
    handle = enqueue_once(
        jobs.LEDGER_INTEGRITY_QUEUE,
        jobs.ledger_integrity_check,
        workflow_id("tests.integrity", uuid.uuid4()),
        NOW,
        None,
    )
    return result_of(handle)


def gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


def test_the_integrity_job_exports_what_the_check_found(jobs_tally: Tally, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, Any]] = []

    def run_integrity_check(engine: Any, clock: Any) -> FakeReport:
        calls.append((engine, clock))
        return FakeReport(discrepancy_count=3)

    fake_module(monkeypatch, INTEGRITY_MODULE, run_integrity_check=run_integrity_check)

    assert run_integrity_job() == 3
    assert calls == [(jobs_tally.engine, jobs_tally.clock)]
    assert gauge("tally_ledger_integrity_discrepancies") == 3
    assert gauge("tally_ledger_integrity_last_run_timestamp_seconds") == NOW.timestamp()


def test_the_integrity_job_runs_the_real_check_and_records_the_run(jobs_tally: Tally) -> None:
    def runs() -> int:
        with jobs_tally.engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM integrity_runs")).scalar_one())

    before = runs()
    found = run_integrity_job()
    assert isinstance(found, int)
    assert runs() == before + 1
    assert gauge("tally_ledger_integrity_discrepancies") == found


def test_the_integrity_job_is_skipped_when_the_build_has_no_check(
    jobs_tally: Tally, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, INTEGRITY_MODULE, None)  # importing it now fails as if it did not exist
    jobs.metrics.LEDGER_INTEGRITY_DISCREPANCIES.set(7)
    assert run_integrity_job() is None
    assert gauge("tally_ledger_integrity_discrepancies") == 7, "a skipped check leaves the gauges alone"


def test_the_purge_job_passes_the_clock_and_the_retention(jobs_tally: Tally, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def purge_expired_idempotent_requests(engine: Any, now: datetime, *, retention_hours: int) -> int:
        calls.append({"engine": engine, "now": now, "retention_hours": retention_hours})
        return 7

    fake_module(monkeypatch, IDEMPOTENCY_MODULE, purge_expired_idempotent_requests=purge_expired_idempotent_requests)
    handle = enqueue_once(
        jobs.MAINTENANCE_QUEUE,
        jobs.purge_expired_idempotent_requests,
        workflow_id("tests.purge", uuid.uuid4()),
        NOW,
        None,
    )
    assert result_of(handle) == 7
    assert calls == [
        {"engine": jobs_tally.engine, "now": NOW, "retention_hours": jobs_tally.settings.idempotency_retention_hours}
    ]


def test_the_purge_job_runs_the_real_purge(jobs_tally: Tally) -> None:
    handle = enqueue_once(
        jobs.MAINTENANCE_QUEUE,
        jobs.purge_expired_idempotent_requests,
        workflow_id("tests.purge", uuid.uuid4()),
        NOW,
        None,
    )
    purged = result_of(handle)
    assert isinstance(purged, int)
    assert purged >= 0


def test_the_billing_job_skips_while_another_run_over_every_tenant_is_under_way(jobs_tally: Tally) -> None:
    """Another worker's scheduled run holds the run lock: this one bills nothing and succeeds (it
    would bill what that one does), instead of failing its step three times."""
    with billing_run_lock(jobs_tally.engine, None) as held:
        assert held
        handle = enqueue_once(
            jobs.BILLING_QUEUE, jobs.billing_run, workflow_id("tests.billing_run", uuid.uuid4()), NOW, None
        )
        assert result_of(handle) == 0


@pytest.fixture
def cli_environment(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, wide_console: None) -> None:
    monkeypatch.setenv("TALLY_CONFIG_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("TALLY_DATABASE_URL", database_url)


def test_run_integrity_check_prints_discrepancies_and_exits_1(
    cli_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = FakeReport(
        discrepancy_count=5,
        discrepancies=[
            FakeDiscrepancy("transaction_must_balance", "txn-1"),
            {"check": "cached_balance_must_equal_entries", "object_id": "acct-9", "detail": {"cached": 1}},
        ],
    )
    fake_module(monkeypatch, INTEGRITY_MODULE, run_integrity_check=lambda engine, clock: report)

    result = CliRunner().invoke(jobs_cli.app, ["run-integrity-check", "--show", "1"])

    assert result.exit_code == 1, result.output
    assert "5 discrepancies" in result.output
    assert "transaction_must_balance" in result.output
    assert "cached_balance_must_equal_entries" not in result.output, "--show 1 shows one"
    assert "and 4 more" in result.output


def test_run_integrity_check_on_a_sound_ledger_exits_0(cli_environment: None, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_module(monkeypatch, INTEGRITY_MODULE, run_integrity_check=lambda engine, clock: FakeReport(0))
    result = CliRunner().invoke(jobs_cli.app, ["run-integrity-check"])
    assert result.exit_code == 0, result.output
    assert "no discrepancies" in result.output


def test_run_integrity_check_without_a_check_says_so(cli_environment: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, INTEGRITY_MODULE, None)
    result = CliRunner().invoke(jobs_cli.app, ["run-integrity-check"])
    assert result.exit_code == 1
    assert "integrity_check_unavailable" in result.output
