"""The job runner: DBOS Transact, configured from tally's settings, on tally's PostgreSQL.

DBOS checkpoints every workflow and step in PostgreSQL (by default a `dbos` schema in tally's own
database), runs queued and scheduled workflows, and on start resumes the workflows that a previous
life of the same worker (same executor id, same application version) left unfinished.

DBOS is a process-wide singleton, so there is at most one runner per process: `launch` for the
`tally worker` process, `start_in_background` for `tally serve --with-worker`, `shutdown` for both.
Everything DBOS-specific stays in `tally.worker`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import TypeVar

from dbos import DBOS, DBOSClient, DBOSConfig, ScheduleInput

from tally import __version__
from tally.adapters.postgres.server import libpq_url
from tally.bootstrap import Tally
from tally.settings import Settings
from tally.worker import context, registry

# Registers tally's workflows, queues and schedules (decorators and declarations only).
from tally.worker import event_jobs as _event_jobs  # noqa: F401
from tally.worker import jobs as _jobs  # noqa: F401
from tally.worker import usage_loops as _usage_loops  # noqa: F401

logger = logging.getLogger(__name__)

# The DBOS application every tally process belongs to; its rows in the system database carry it.
APPLICATION_NAME = "tally"
SYSTEM_SCHEMA = "dbos"
# DBOS names its workflow threads with this prefix (ThreadPoolExecutor thread_name_prefix).
_WORKFLOW_THREAD_PREFIX = "dbos-executor-"

T = TypeVar("T")


@dataclass(frozen=True)
class WorkerConfig:
    """Everything the runner is started with, derived from settings."""

    system_database_url: str
    executor_id: str
    application_version: str
    shutdown_grace_seconds: int
    system_database_pool_size: int
    log_level: str


def worker_config(tally: Tally) -> WorkerConfig:
    settings = tally.settings
    return WorkerConfig(
        system_database_url=system_database_url(settings, tally.database_url),
        executor_id=settings.worker_executor_id,
        application_version=settings.worker_application_version or f"tally-{__version__}",
        shutdown_grace_seconds=settings.worker_shutdown_grace_seconds,
        system_database_pool_size=settings.database_pool_size,
        # DBOS narrates every start (migrations, queues) at info: it speaks at warning unless debugging.
        log_level="DEBUG" if settings.log_level == "debug" else "WARNING",
    )


def system_database_url(settings: Settings, database_url: str) -> str:
    """Where DBOS keeps its checkpoints: tally's own database unless settings name another.

    Sharing tally's database keeps a single thing to back up and restore consistently, needs no
    CREATE DATABASE privilege, and lets a use case enqueue a job in the same transaction as its
    writes. The `dbos` schema keeps the two sets of tables apart.
    """
    return libpq_url(settings.worker_system_database_url or database_url)


def _dbos_config(config: WorkerConfig) -> DBOSConfig:
    return {
        "name": APPLICATION_NAME,
        "system_database_url": config.system_database_url,
        "dbos_system_schema": SYSTEM_SCHEMA,
        # Fixed, not a random id, so that a restarted worker finds the workflows it must resume.
        "executor_id": config.executor_id,
        # Fixed, not DBOS's hash of the workflow source: every tally process of one release (API,
        # workers) must agree, or a worker would not dequeue what another process enqueued.
        "application_version": config.application_version,
        "sys_db_pool_size": config.system_database_pool_size,
        "log_level": config.log_level,
        "enable_otlp": False,
        "run_migrations": True,
    }


class _Lifecycle:
    def __init__(self) -> None:
        # Serializes start and stop; DBOS itself is not safe to start twice concurrently.
        self.lock = threading.Lock()
        self.running: WorkerConfig | None = None
        # Background loops (registry.define_loop): their stop event and threads.
        self.loops_stop = threading.Event()
        self.loop_threads: list[threading.Thread] = []


_lifecycle = _Lifecycle()
LOOP_JOIN_SECONDS = 10.0


def _start_loops(tally: Tally) -> None:
    _lifecycle.loops_stop = threading.Event()
    _lifecycle.loop_threads = []
    for loop in registry.loops():
        thread = threading.Thread(
            target=loop.run, args=(tally, _lifecycle.loops_stop), name=f"tally-loop-{loop.name}", daemon=True
        )
        thread.start()
        _lifecycle.loop_threads.append(thread)


def _stop_loops() -> None:
    _lifecycle.loops_stop.set()
    for thread in _lifecycle.loop_threads:
        thread.join(timeout=LOOP_JOIN_SECONDS)
    _lifecycle.loop_threads = []


def is_running() -> bool:
    with _lifecycle.lock:
        return _lifecycle.running is not None


def start_in_background(tally: Tally) -> None:
    """Start the runner on DBOS's own threads and return once it is running.

    Unfinished workflows of this executor are resumed right away, and the runner works queues and
    schedules until `shutdown`. For `tally serve --with-worker`: call it once per process, and call
    `shutdown` before the process ends.
    """
    _outside_event_loop(lambda: _start(tally))


def launch(tally: Tally) -> None:
    """Run the worker in the foreground until SIGINT or SIGTERM, then shut it down (`tally worker`).

    Running workflows get `worker_shutdown_grace_seconds` to finish. Any still running after that is
    abandoned, exactly as if the process had been killed: the process exits at once, and the next
    start of this executor resumes them from their last completed step. A second signal exits at once.
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            logger.warning(
                "second %s: exiting now; running workflows resume on the next start", signal.Signals(signum).name
            )
            _exit_now(1)
        logger.info("received %s: stopping the worker", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        start_in_background(tally)
        while not stop.wait(timeout=1.0):
            pass
    finally:
        # Still under our handlers: a second signal during the grace period exits at once.
        shutdown(exit_if_abandoned=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def shutdown(*, exit_if_abandoned: bool = False) -> int:
    """Stop the runner; returns how many workflows were still running when it gave up waiting.

    Stops taking work, waits up to `worker_shutdown_grace_seconds` for running workflows, then
    releases DBOS. A workflow still running is left PENDING and resumes on the next start of this
    executor. Its thread would keep the process from exiting, so a process that is ending should pass
    `exit_if_abandoned=True`: it then exits at once (code 0) when a workflow was abandoned.
    Does nothing if the runner is not running.
    """
    with _lifecycle.lock:
        if _lifecycle.running is None:
            return 0
        config = _lifecycle.running
        _lifecycle.running = None
        _stop_loops()
        DBOS.destroy(workflow_completion_timeout_sec=config.shutdown_grace_seconds)
    # Abandoned workflow threads keep using the bound Tally until the process ends, so it stays bound.
    still_running = _running_workflow_threads()
    logger.info("job runner stopped (executor %s)", config.executor_id)
    if still_running:
        logger.warning("%d running workflows abandoned; they resume on the next start", still_running)
        if exit_if_abandoned:
            _exit_now(0)
    return still_running


@contextmanager
def open_client(tally: Tally) -> Iterator[DBOSClient]:
    """A DBOS client on tally's system database, for processes that do not run the runner.

    It enqueues, lists and manages workflows without executing any. The system schema is created
    first if no runner has started yet, so a fresh installation can enqueue before a worker exists.
    """
    config = worker_config(tally)
    DBOS.migrate(config.system_database_url, schema=SYSTEM_SCHEMA)
    client = DBOSClient(
        system_database_url=config.system_database_url,
        dbos_system_schema=SYSTEM_SCHEMA,
        application_name=APPLICATION_NAME,
        system_database_pool_size=2,
    )
    try:
        yield client
    finally:
        client.destroy()


def _start(tally: Tally) -> None:
    with _lifecycle.lock:
        if _lifecycle.running is not None:
            raise RuntimeError("the job runner is already running in this process")
        config = worker_config(tally)
        # Bound before launch: DBOS resumes unfinished workflows during launch, and their steps need it.
        context.bind(tally)
        _route_dbos_logs_through_root()
        DBOS(config=_dbos_config(config))
        try:
            DBOS.launch()
            for queue in registry.queues():
                DBOS.register_queue(
                    queue.name,
                    worker_concurrency=queue.worker_concurrency,
                    global_concurrency=queue.global_concurrency,
                    polling_interval_sec=queue.polling_interval_seconds,
                )
            _apply_schedules(tally.settings)
        except BaseException:
            DBOS.destroy()
            raise
        _start_loops(tally)
        _lifecycle.running = config
    logger.info(
        "job runner started (executor %s, version %s, %d queues, %d schedules)",
        config.executor_id,
        config.application_version,
        len(registry.queues()),
        len(registry.schedules()),
    )


def _apply_schedules(settings: Settings) -> None:
    """Make the stored schedules match the declared ones: create, update, delete stale ones."""
    declared = registry.schedules()
    entries: list[ScheduleInput] = []
    for definition in declared:
        cron = definition.cron(settings)
        entries.append(
            {
                "schedule_name": definition.name,
                "workflow_fn": definition.workflow,
                "schedule": cron,
                "queue_name": definition.queue_name,
                # A worker that was down does not owe the missed runs; the next one is enough.
                "automatic_backfill": False,
            }
        )
    try:
        DBOS.apply_schedules(entries)
    except Exception as error:
        crons = ", ".join(f"{d.cron_setting}={d.cron(settings)!r}" for d in declared)
        raise ValueError(f"cannot apply the job schedules ({crons}): {error}") from error
    names = {definition.name for definition in declared}
    for stored in DBOS.list_schedules(schedule_name_prefix=registry.SCHEDULE_NAME_PREFIX):
        if stored["schedule_name"] not in names:
            logger.info("deleting schedule %s: no longer declared", stored["schedule_name"])
            DBOS.delete_schedule(stored["schedule_name"])


def _route_dbos_logs_through_root() -> None:
    """Once the entrypoint has configured logging, DBOS logs in the same format (JSON or console).

    DBOS installs its own console handler only on a `dbos` logger that has none.
    """
    if not logging.getLogger().handlers:
        return
    dbos_logger = logging.getLogger("dbos")
    if not dbos_logger.handlers:
        dbos_logger.addHandler(logging.NullHandler())
    dbos_logger.propagate = True


def _running_workflow_threads() -> int:
    # After DBOS.destroy idle workflow threads exit promptly; the ones left are running a workflow.
    threads = [t for t in threading.enumerate() if t.name.startswith(_WORKFLOW_THREAD_PREFIX)]
    for thread in threads:
        thread.join(timeout=0.2)
    return sum(1 for thread in threads if thread.is_alive())


def _outside_event_loop(function: Callable[[], T]) -> T:
    """Run `function` here, or on a helper thread if this thread runs an event loop.

    Some DBOS calls refuse to run on an event-loop thread (an ASGI lifespan hook is one).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return function()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(function())
        except BaseException as error:
            failure.append(error)

    helper = threading.Thread(target=run, name="tally-worker-start")
    helper.start()
    helper.join()
    if failure:
        raise failure[0]
    return outcome[0]


def _exit_now(code: int) -> None:
    """Leave without waiting for workflow threads: what they had not checkpointed is redone later."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
