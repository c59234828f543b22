"""A workflow outlives the workers that run it: `kill -9`, a restart, a stop, a hand-over.

The workflow (tests/worker/crash_worker.py) has three steps, each leaving a marker row; step 2 blocks
until released. Three `tally worker` processes take turns with the one workflow:

1. worker A starts it and is killed with `kill -9` while step 2 runs;
2. worker A comes back (same executor id), resumes it at step 2, and is stopped with SIGTERM; its
   grace period runs out, so it abandons the workflow, as a crash would;
3. worker A is declared gone (`recover_executor`), step 2 is released, and worker B finishes it.

Step 1 runs exactly once across all three, and its checkpointed result reaches the final result.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dbos import DBOSClient, WorkflowStatus
from sqlalchemy import text

from tally.bootstrap import Tally, build
from tally.settings import Settings
from tally.worker import admin, runtime
from tests.worker.worker_testing import CRON_NEVER, wait_until

CRASH_WORKER = Path(__file__).with_name("crash_worker.py")
QUEUE = "tests_crash"
WORKFLOW_NAME = "tests.crash.three_steps"
MARKERS_TABLE = "worker_crash_markers"
EXIT_WAIT_SECONDS = 20


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def markers(tally: Tally) -> Callable[[str], dict[str, list[str]]]:
    with tally.engine.begin() as connection:
        connection.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {MARKERS_TABLE} ("
                " workflow_id text NOT NULL, step text NOT NULL, detail text NOT NULL, pid integer NOT NULL,"
                " recorded_at timestamptz NOT NULL DEFAULT clock_timestamp())"
            )
        )

    def read(workflow_id: str) -> dict[str, list[str]]:
        with tally.engine.connect() as connection:
            rows = connection.execute(
                text(f"SELECT step, detail FROM {MARKERS_TABLE} WHERE workflow_id = :w ORDER BY recorded_at"),
                {"w": workflow_id},
            ).all()
        found: dict[str, list[str]] = {}
        for step, detail in rows:
            found.setdefault(step, []).append(detail)
        return found

    return read


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait(EXIT_WAIT_SECONDS)


@pytest.mark.slow
def test_a_workflow_survives_kill_9_restart_stop_and_hand_over(
    settings: Settings,
    database_url: str,
    system_database_factory: Callable[[str], str],
    markers: Callable[[str], dict[str, list[str]]],
    workers: list[Worker],
    tmp_path: Path,
) -> None:
    system_url = system_database_factory("crash")
    release = tmp_path / "release-step-2"

    def start_worker(executor_id: str) -> Worker:
        log = tmp_path / f"worker-{len(workers)}-{executor_id}.log"
        env = {
            **os.environ,
            "TALLY_CONFIG_FILE": str(tmp_path / "no-such-tally.toml"),
            "TALLY_DATABASE_URL": database_url,
            "TALLY_WORKER_SYSTEM_DATABASE_URL": system_url,
            "TALLY_WORKER_EXECUTOR_ID": executor_id,
            "TALLY_WORKER_SHUTDOWN_GRACE_SECONDS": "1",
            "TALLY_INTEGRITY_CHECK_CRON": CRON_NEVER,
            "TALLY_IDEMPOTENCY_PURGE_CRON": CRON_NEVER,
            "TALLY_LOG_FORMAT": "console",
            "CRASH_RELEASE_FILE": str(release),
        }
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, str(CRASH_WORKER)], env=env, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT
            )
        worker = Worker(process, log)
        workers.append(worker)
        return worker

    def running(worker: Worker) -> bool:
        if worker.process.poll() is not None:
            pytest.fail(f"worker exited with {worker.process.returncode}:\n{worker.output()}")
        return True

    def counts(workflow_id: str) -> dict[str, int]:
        return {step: len(rows) for step, rows in markers(workflow_id).items()}

    client_tally = build(settings.model_copy(update={"worker_system_database_url": system_url}), migrate=False)
    try:
        with runtime.open_client(client_tally) as client:
            workflow_id = f"crash-{uuid.uuid4().hex[:12]}"
            client.enqueue(
                {"queue_name": QUEUE, "workflow_name": WORKFLOW_NAME, "workflow_id": workflow_id}, workflow_id
            )

            # 1. kill -9 in the middle of step 2.
            first = start_worker("crash-a")
            wait_until(
                lambda: running(first) and counts(workflow_id).get("step2-started") == 1,
                "worker A to reach step 2",
            )
            first.process.send_signal(signal.SIGKILL)
            assert first.process.wait(EXIT_WAIT_SECONDS) == -signal.SIGKILL
            assert counts(workflow_id) == {"step1": 1, "step2-started": 1}
            assert _status(client, workflow_id).status == "PENDING"

            # 2. The same executor restarts and resumes at step 2 (not step 1); then SIGTERM.
            second = start_worker("crash-a")
            wait_until(
                lambda: running(second) and counts(workflow_id).get("step2-started") == 2,
                "restarted worker A to resume at step 2",
            )
            assert counts(workflow_id) == {"step1": 1, "step2-started": 2}
            second.process.send_signal(signal.SIGTERM)
            assert second.process.wait(EXIT_WAIT_SECONDS) == 0, second.output()
            assert "abandoned" in second.output()
            assert _status(client, workflow_id).status == "PENDING"

            # 3. Worker A is gone for good: its work goes to worker B, which finishes it.
            release.touch()
            assert admin.recover_executor(client, "crash-a") == [workflow_id]
            assert admin.recover_executor(client, "crash-a") == [], "a second hand-over finds nothing"
            third = start_worker("crash-b")
            wait_until(
                lambda: running(third) and _status(client, workflow_id).status not in ("PENDING", "ENQUEUED"),
                "worker B to finish the workflow",
            )
            status = _status(client, workflow_id)
            assert status.status == "SUCCESS", f"{status.status}: {status.error}\n{third.output()}"
            assert status.executor_id == "crash-b"

            [token] = markers(workflow_id)["step1"]
            # Step 1 ran once, and its checkpointed result was replayed into the resumed workflow.
            assert status.output == f"{token}/two/three"
            assert counts(workflow_id) == {
                "step1": 1,
                # Step 2 had not returned when its workers stopped: it ran again each time, to completion once.
                "step2-started": 3,
                "step2-done": 1,
                "step3": 1,
            }

            third.process.send_signal(signal.SIGTERM)
            assert third.process.wait(EXIT_WAIT_SECONDS) == 0, third.output()
    finally:
        client_tally.close()


def _status(client: DBOSClient, workflow_id: str) -> WorkflowStatus:
    [status] = client.list_workflows(workflow_ids=[workflow_id])
    return status
