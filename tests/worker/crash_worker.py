"""`tally worker`, plus one three-step test workflow, run as a subprocess by the crash test.

Each step appends a marker row (in the tally database) before returning. Step 2 then blocks until the
release file exists, so the test can kill the worker while step 2 runs, then let a new worker finish.

    python tests/worker/crash_worker.py      # environment: TALLY_* settings, CRASH_RELEASE_FILE
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

from dbos import DBOS
from sqlalchemy import text

from tally.worker.context import current_tally
from tally.worker.registry import define_queue

CRASH_QUEUE = define_queue("tests_crash", polling_interval_seconds=0.2)
WORKFLOW_NAME = "tests.crash.three_steps"
MARKERS_TABLE = "worker_crash_markers"
RELEASE_WAIT_SECONDS_MAX = 60.0


def mark(workflow_id: str, step: str, detail: str = "") -> None:
    with current_tally().engine.begin() as connection:
        connection.execute(
            text(f"INSERT INTO {MARKERS_TABLE} (workflow_id, step, detail, pid) VALUES (:w, :s, :d, :p)"),
            {"w": workflow_id, "s": step, "d": detail, "p": os.getpid()},
        )


@DBOS.step(name="tests.crash.step_one")
def step_one(workflow_id: str) -> str:
    # A token only this execution knows: the final result proves step 1 was replayed, not re-run.
    token = uuid.uuid4().hex
    mark(workflow_id, "step1", token)
    return token


@DBOS.step(name="tests.crash.step_two")
def step_two(workflow_id: str) -> str:
    mark(workflow_id, "step2-started")
    release = Path(os.environ["CRASH_RELEASE_FILE"])
    deadline = time.monotonic() + RELEASE_WAIT_SECONDS_MAX
    while not release.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{release} did not appear")
        time.sleep(0.02)
    mark(workflow_id, "step2-done")
    return "two"


@DBOS.step(name="tests.crash.step_three")
def step_three(workflow_id: str) -> str:
    mark(workflow_id, "step3")
    return "three"


@DBOS.workflow(name=WORKFLOW_NAME)
def three_steps(workflow_id: str) -> str:
    return "/".join([step_one(workflow_id), step_two(workflow_id), step_three(workflow_id)])


if __name__ == "__main__":
    from tally.cli import main

    sys.argv = ["tally", "worker"]
    main()
