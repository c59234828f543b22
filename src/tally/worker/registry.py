"""Queues and schedules, declared where the jobs are defined and applied when the runner starts.

Declaring one only records it here: nothing touches DBOS or the database at import time. The runtime
registers every declared queue and reconciles the schedules each time it starts, so the code is the
source of truth for both.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tally.settings import Settings

# Every schedule tally declares is named under this prefix; the runtime deletes stored schedules with
# the prefix that the code no longer declares, and leaves any other schedule alone.
SCHEDULE_NAME_PREFIX = "tally."

_QUEUE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_SCHEDULE_NAME = re.compile(r"^tally\.[a-z][a-z0-9_.]{0,99}$")
CONCURRENCY_MAX = 1024

ScheduledWorkflow = Callable[[datetime, Any], Any]


@dataclass(frozen=True)
class QueueDefinition:
    """A DBOS queue. Concurrency limits bound how many of its workflows run at once."""

    name: str
    # On one worker process; None: no per-worker limit.
    worker_concurrency: int | None = None
    # Across all workers; None: no global limit.
    global_concurrency: int | None = None
    polling_interval_seconds: float = 1.0


@dataclass(frozen=True)
class ScheduleDefinition:
    """A workflow started on a cron schedule read from one setting (5 fields, or 6 with seconds first)."""

    name: str
    workflow: ScheduledWorkflow
    cron_setting: str
    queue_name: str | None = None

    def cron(self, settings: Settings) -> str:
        value = getattr(settings, self.cron_setting)
        if not isinstance(value, str):
            raise TypeError(f"setting {self.cron_setting} must be a cron expression string")
        return value


# A background loop: `run(tally, stop)` works until `stop` is set (polling, e.g. the rollup worker).
BackgroundLoop = Callable[[Any, threading.Event], None]


@dataclass(frozen=True)
class LoopDefinition:
    """A thread the runner keeps running beside DBOS: for work that polls faster than schedules can."""

    name: str
    run: BackgroundLoop


_lock = threading.Lock()
_queues: dict[str, QueueDefinition] = {}
_schedules: dict[str, ScheduleDefinition] = {}
_loops: dict[str, LoopDefinition] = {}


def define_queue(
    name: str,
    *,
    worker_concurrency: int | None = None,
    global_concurrency: int | None = None,
    polling_interval_seconds: float = 1.0,
) -> str:
    """Declare a queue; returns its name, to pass to `enqueue_once`."""
    if not _QUEUE_NAME.match(name):
        raise ValueError(f"queue name {name!r} must be 1 to 63 of [a-z0-9_], starting with a letter")
    for label, limit in (("worker_concurrency", worker_concurrency), ("global_concurrency", global_concurrency)):
        if limit is not None and not 1 <= limit <= CONCURRENCY_MAX:
            raise ValueError(f"{label} of queue {name} must be 1 to {CONCURRENCY_MAX}")
    if worker_concurrency is not None and global_concurrency is not None and worker_concurrency > global_concurrency:
        raise ValueError(f"worker_concurrency of queue {name} must not exceed its global_concurrency")
    if not 0.05 <= polling_interval_seconds <= 60:
        raise ValueError(f"polling_interval_seconds of queue {name} must be 0.05 to 60")
    definition = QueueDefinition(name, worker_concurrency, global_concurrency, polling_interval_seconds)
    _add(_queues, name, definition, "queue")
    return name


def define_schedule(
    name: str, workflow: ScheduledWorkflow, *, cron_setting: str, queue_name: str | None = None
) -> None:
    """Declare that `workflow(scheduled_at, context)` runs on the cron named by a setting."""
    if not _SCHEDULE_NAME.match(name):
        raise ValueError(f"schedule name {name!r} must start with {SCHEDULE_NAME_PREFIX!r} and use [a-z0-9_.]")
    if cron_setting not in Settings.model_fields:
        raise ValueError(f"schedule {name}: {cron_setting!r} is not a setting")
    if queue_name is not None and queue_name not in _queues:
        raise ValueError(f"schedule {name}: queue {queue_name!r} is not declared (define_queue it first)")
    _add(_schedules, name, ScheduleDefinition(name, workflow, cron_setting, queue_name), "schedule")


def define_loop(name: str, run: BackgroundLoop) -> None:
    """Declare a loop the runner starts on its own thread and stops (sets its event, joins) on shutdown."""
    if not _QUEUE_NAME.match(name):
        raise ValueError(f"loop name {name!r} must be 1 to 63 of [a-z0-9_], starting with a letter")
    _add(_loops, name, LoopDefinition(name, run), "loop")


def loops() -> tuple[LoopDefinition, ...]:
    with _lock:
        return tuple(_loops.values())


def queues() -> tuple[QueueDefinition, ...]:
    with _lock:
        return tuple(_queues.values())


def schedules() -> tuple[ScheduleDefinition, ...]:
    with _lock:
        return tuple(_schedules.values())


def _add(table: dict[str, Any], name: str, definition: object, kind: str) -> None:
    with _lock:
        existing = table.get(name)
        if existing is not None and existing != definition:
            raise ValueError(f"{kind} {name} is already declared differently")
        table[name] = definition
