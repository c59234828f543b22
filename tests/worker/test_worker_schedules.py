"""Schedules: the integrity check fires on its cron, and each start reconciles the stored schedules."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from dbos import DBOS
from prometheus_client import REGISTRY

from tally.bootstrap import Tally, build
from tally.settings import Settings
from tally.worker import jobs, runtime
from tests.worker.worker_testing import CRON_NEVER, wait_until, worker_settings

EVERY_SECOND = "* * * * * *"  # six fields: seconds first
INTEGRITY_SCHEDULE = "tally.ledger_integrity_check"


@dataclass
class FakeReport:
    discrepancy_count: int


@pytest.fixture
def start_runner(settings: Settings, system_database_factory: Callable[[str], str]) -> Iterator[Callable[..., Tally]]:
    """Starts the runner with some settings changed; stops it (and closes its Tally) after the test."""
    system_url = system_database_factory("schedules")
    opened: list[Tally] = []

    def start(**overrides: Any) -> Tally:
        tally = build(worker_settings(settings, worker_system_database_url=system_url, **overrides), migrate=False)
        opened.append(tally)
        runtime.start_in_background(tally)
        return tally

    yield start
    runtime.shutdown()
    for tally in opened:
        tally.close()


def test_the_integrity_check_runs_on_its_schedule(
    monkeypatch: pytest.MonkeyPatch, start_runner: Callable[..., Tally]
) -> None:
    runs: list[int] = []

    def run_integrity_check(engine: Any, clock: Any) -> FakeReport:
        runs.append(1)
        return FakeReport(discrepancy_count=2)

    fake = ModuleType("tally.app.check_ledger_integrity")
    fake.run_integrity_check = run_integrity_check  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, fake.__name__, fake)

    start_runner(integrity_check_cron=EVERY_SECOND)
    wait_until(
        lambda: len(DBOS.list_workflows(name=INTEGRITY_SCHEDULE, status="SUCCESS")) >= 2,
        "two scheduled integrity checks to succeed",
        timeout=20,
    )

    fired = DBOS.list_workflows(name=INTEGRITY_SCHEDULE, status="SUCCESS")
    assert len(runs) >= len(fired)
    assert {workflow.queue_name for workflow in fired} == {jobs.LEDGER_INTEGRITY_QUEUE}
    # One run per scheduled instant, named after it, whichever worker fired it.
    assert all(workflow.workflow_id.startswith(f"sched-{INTEGRITY_SCHEDULE}-") for workflow in fired)
    assert REGISTRY.get_sample_value("tally_ledger_integrity_discrepancies") == 2
    # Stopped while the fake check is still in place: no scheduled run may reach the real one.
    runtime.shutdown()


def test_each_start_makes_the_stored_schedules_match_the_code(start_runner: Callable[..., Tally]) -> None:
    start_runner(integrity_check_cron="*/5 * * * *")
    schedule = DBOS.get_schedule(INTEGRITY_SCHEDULE)
    assert schedule is not None
    assert schedule["schedule"] == "*/5 * * * *"
    # One tally no longer declares, and one somebody else made.
    for name in ("tally.retired_job", "ops.nightly_export"):
        DBOS.create_schedule(schedule_name=name, workflow_fn=jobs.ledger_integrity_check, schedule=CRON_NEVER)
    runtime.shutdown()

    start_runner(integrity_check_cron="0 */2 * * *")

    schedule = DBOS.get_schedule(INTEGRITY_SCHEDULE)
    assert schedule is not None
    assert schedule["schedule"] == "0 */2 * * *"
    assert DBOS.get_schedule("tally.retired_job") is None
    assert DBOS.get_schedule("ops.nightly_export") is not None
    assert DBOS.get_schedule("tally.purge_expired_idempotent_requests") is not None


def test_an_invalid_cron_stops_the_start_and_names_the_setting(start_runner: Callable[..., Tally]) -> None:
    with pytest.raises(ValueError, match="integrity_check_cron='every hour'"):
        start_runner(integrity_check_cron="every hour")
    assert not runtime.is_running()
    start_runner()
    assert runtime.is_running()


def test_the_runner_starts_from_an_event_loop_thread(
    settings: Settings, system_database_factory: Callable[[str], str]
) -> None:
    """As from an ASGI lifespan hook, where some DBOS calls refuse to run."""
    tally = build(worker_settings(settings, worker_system_database_url=system_database_factory("loop")), migrate=False)

    async def lifespan_startup() -> None:
        runtime.start_in_background(tally)

    try:
        asyncio.run(lifespan_startup())
        assert runtime.is_running()
        assert DBOS.retrieve_queue(jobs.LEDGER_INTEGRITY_QUEUE) is not None
    finally:
        runtime.shutdown()
        tally.close()
