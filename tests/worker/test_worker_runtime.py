"""The runner in this process, on its default system database (a `dbos` schema in tally's database)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from dbos import DBOS, WorkflowHandle
from sqlalchemy import text
from typer.testing import CliRunner

from tally.bootstrap import Tally, build
from tally.cli import jobs as jobs_cli
from tally.settings import Settings
from tally.worker import registry, runtime
from tally.worker.context import current_tally
from tally.worker.enqueue import enqueue_once, enqueue_once_via_client, workflow_id
from tests.worker.worker_testing import wait_until, worker_settings

QUEUE = registry.define_queue(
    "tests_worker_runtime", worker_concurrency=2, global_concurrency=4, polling_interval_seconds=0.1
)
RUNS: Counter[str] = Counter()


@DBOS.step(name="tests.runtime.count_run")
def count_run(key: str) -> int:
    RUNS[key] += 1
    # Steps reach the database through the Tally the runner was started with.
    with current_tally().engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return RUNS[key]


@DBOS.workflow(name="tests.runtime.add")
def add(key: str, a: int, b: int) -> int:
    count_run(key)
    return a + b


@pytest.fixture(scope="module")
def worker_tally(settings: Settings) -> Iterator[Tally]:
    tally = build(worker_settings(settings), migrate=False)
    runtime.start_in_background(tally)
    yield tally
    runtime.shutdown()
    tally.close()


def result_of(handle: WorkflowHandle[Any], timeout: float = 15.0) -> Any:
    """The workflow's result, waiting at most `timeout` seconds."""
    wait_until(
        lambda: handle.get_status().status not in ("ENQUEUED", "PENDING", "DELAYED"),
        f"workflow {handle.get_workflow_id()} to finish",
        timeout=timeout,
    )
    status = handle.get_status()
    assert status.status == "SUCCESS", f"{status.status}: {status.error}"
    return handle.get_result()


def test_the_system_database_is_tallys_own_unless_configured(worker_tally: Tally, settings: Settings) -> None:
    assert runtime.worker_config(worker_tally).system_database_url == worker_tally.database_url
    elsewhere = settings.model_copy(
        update={"worker_system_database_url": "postgresql+psycopg://u:p@db.example:5432/jobs"}
    )
    assert runtime.system_database_url(elsewhere, worker_tally.database_url) == "postgresql://u:p@db.example:5432/jobs"


def test_executor_and_version_are_stable_names_from_settings(worker_tally: Tally, settings: Settings) -> None:
    config = runtime.worker_config(worker_tally)
    assert config.executor_id == worker_tally.settings.worker_executor_id
    assert config.application_version == "tally-0.1.0"
    assert DBOS.executor_id == config.executor_id
    assert DBOS.application_version == config.application_version
    pinned = build(settings.model_copy(update={"worker_application_version": "2024-06-01"}), migrate=False)
    try:
        assert runtime.worker_config(pinned).application_version == "2024-06-01"
    finally:
        pinned.close()


def test_declared_queues_are_registered_with_their_limits(worker_tally: Tally) -> None:
    queue = DBOS.retrieve_queue(QUEUE)
    assert queue is not None
    assert (queue.worker_concurrency, queue.global_concurrency) == (2, 4)
    assert DBOS.retrieve_queue("tally_ledger_integrity") is not None


def test_a_workflow_id_runs_once_however_often_it_is_enqueued(worker_tally: Tally) -> None:
    key = workflow_id("tests.add", uuid.uuid4())
    assert result_of(enqueue_once(QUEUE, add, key, key, 2, 3)) == 5
    # Same id, other arguments: the first run's result, and no second run.
    assert result_of(enqueue_once(QUEUE, add, key, key, 40, 2)) == 5
    with runtime.open_client(worker_tally) as client:
        assert result_of(enqueue_once_via_client(client, QUEUE, add, key, key, 1, 1)) == 5
    assert RUNS[key] == 1


def test_a_client_enqueues_work_for_the_runner(worker_tally: Tally) -> None:
    key = workflow_id("tests.add", uuid.uuid4())
    with runtime.open_client(worker_tally) as client:
        assert result_of(enqueue_once_via_client(client, QUEUE, add, key, key, 20, 22)) == 42
    assert RUNS[key] == 1


def test_restarting_the_runner_reruns_nothing_that_finished(worker_tally: Tally) -> None:
    key = workflow_id("tests.add", uuid.uuid4())
    assert result_of(enqueue_once(QUEUE, add, key, key, 1, 2)) == 3

    assert runtime.shutdown() == 0
    assert not runtime.is_running()
    assert runtime.shutdown() == 0, "stopping a stopped runner does nothing"
    runtime.start_in_background(worker_tally)

    assert result_of(enqueue_once(QUEUE, add, key, key, 1, 2)) == 3
    assert RUNS[key] == 1


def test_one_runner_per_process(worker_tally: Tally) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        runtime.start_in_background(worker_tally)
    assert runtime.is_running()


def test_jobs_list_shows_recent_workflows(
    worker_tally: Tally, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, wide_console: None
) -> None:
    key = workflow_id("tests.add", "listed", uuid.uuid4())
    assert result_of(enqueue_once(QUEUE, add, key, key, 1, 1)) == 2
    monkeypatch.setenv("TALLY_CONFIG_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("TALLY_DATABASE_URL", database_url)

    listed = CliRunner().invoke(
        jobs_cli.app, ["list", "--name", "tests.runtime.add", "--limit", "50"], env={"COLUMNS": "300"}
    )
    assert listed.exit_code == 0, listed.output
    assert key in listed.output
    assert "SUCCESS" in listed.output

    bad = CliRunner().invoke(jobs_cli.app, ["list", "--status", "SLEEPING"])
    assert bad.exit_code == 1
    assert "status_unknown" in bad.output


def test_workflow_ids_are_deterministic_and_unambiguous() -> None:
    assert workflow_id("invoice_run", "cus_1", "2026-01") == "invoice_run/cus_1/2026-01"
    assert workflow_id("invoice_run", "a/b", "c") != workflow_id("invoice_run", "a", "b/c")
    assert workflow_id("invoice_run", "a%2Fb") != workflow_id("invoice_run", "a/b")
    with pytest.raises(ValueError, match="kind"):
        workflow_id("Invoice Run", "x")
    with pytest.raises(ValueError, match="at least one part"):
        workflow_id("invoice_run")
    with pytest.raises(ValueError, match="longer than"):
        workflow_id("invoice_run", "x" * 600)


def test_queue_and_schedule_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="queue name"):
        registry.define_queue("Bad-Name")
    with pytest.raises(ValueError, match="must not exceed"):
        registry.define_queue("tests_too_wide", worker_concurrency=5, global_concurrency=2)
    with pytest.raises(ValueError, match="already declared differently"):
        registry.define_queue(QUEUE, worker_concurrency=1)
    assert (
        registry.define_queue(QUEUE, worker_concurrency=2, global_concurrency=4, polling_interval_seconds=0.1) == QUEUE
    ), "declaring the same queue again is harmless"
    with pytest.raises(ValueError, match="is not a setting"):
        registry.define_schedule("tally.tests.nope", add, cron_setting="no_such_cron")
    with pytest.raises(ValueError, match="not declared"):
        registry.define_schedule("tally.tests.nope", add, cron_setting="integrity_check_cron", queue_name="nowhere")
    with pytest.raises(ValueError, match="must start with"):
        registry.define_schedule("nightly", add, cron_setting="integrity_check_cron")


def test_steps_outside_a_started_runner_have_no_tally(worker_tally: Tally) -> None:
    from tally.worker import context

    saved = context.current_tally()
    context.unbind()
    try:
        with pytest.raises(RuntimeError, match="has not been started"):
            current_tally()
    finally:
        context.bind(saved)
