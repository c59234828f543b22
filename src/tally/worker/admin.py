"""Operating the runner from outside it: list recent workflows, hand a dead worker's work to others.

These go through a DBOS client (`runtime.open_client`), so they execute no workflow themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from dbos import DBOSClient, WorkflowStatus

LIST_LIMIT_MAX = 1000
RECOVER_BATCH_SIZE = 500
# A dead worker with more unfinished workflows than this is recovered in several calls.
RECOVER_LIMIT_MAX = 100_000
_ERROR_LENGTH_MAX = 200

WORKFLOW_STATUSES = (
    "ENQUEUED",
    "DELAYED",
    "PENDING",
    "SUCCESS",
    "ERROR",
    "CANCELLED",
    "MAX_RECOVERY_ATTEMPTS_EXCEEDED",
)


@dataclass(frozen=True)
class WorkflowSummary:
    workflow_id: str
    name: str
    status: str
    queue_name: str | None
    executor_id: str | None
    application_version: str | None
    created_at: datetime | None
    updated_at: datetime | None
    error: str | None


def recent_workflows(
    client: DBOSClient, *, limit: int = 20, status: str | None = None, name: str | None = None
) -> list[WorkflowSummary]:
    """The most recently created workflows, newest first."""
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise ValueError(f"limit must be 1 to {LIST_LIMIT_MAX}")
    if status is not None and status not in WORKFLOW_STATUSES:
        raise ValueError(f"status must be one of {', '.join(WORKFLOW_STATUSES)}")
    statuses = client.list_workflows(
        status=status, name=name, limit=limit, sort_desc=True, load_input=False, load_output=False
    )
    return [_summary(status) for status in statuses]


def recover_executor(client: DBOSClient, executor_id: str) -> list[str]:
    """Re-enqueue the unfinished workflows of a worker that is gone for good; returns their ids.

    Any running worker then picks them up and resumes each from its last completed step, on the queue
    it was on. Only for a worker that will not come back: one that is still alive would run them a
    second time, concurrently. (A worker restarted under its old executor id recovers its own.)
    """
    if not executor_id:
        raise ValueError("executor_id must not be empty")
    recovered: list[str] = []
    while len(recovered) < RECOVER_LIMIT_MAX:
        pending = client.list_workflows(
            status="PENDING",
            executor_id=executor_id,
            limit=RECOVER_BATCH_SIZE,
            load_input=False,
            load_output=False,
        )
        if not pending:
            break
        for status in pending:
            # Resuming keeps a queued workflow on its queue (and under that queue's limits).
            client.resume_workflow(status.workflow_id, queue_name=status.queue_name)
            recovered.append(status.workflow_id)
    return recovered


def _summary(status: WorkflowStatus) -> WorkflowSummary:
    error = None if status.error is None else f"{type(status.error).__name__}: {status.error}"
    return WorkflowSummary(
        workflow_id=status.workflow_id,
        name=status.name,
        status=str(status.status),
        queue_name=status.queue_name,
        executor_id=status.executor_id,
        application_version=status.app_version,
        created_at=_from_epoch_ms(status.created_at),
        updated_at=_from_epoch_ms(status.updated_at),
        error=None if error is None else error[:_ERROR_LENGTH_MAX],
    )


def _from_epoch_ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, tz=UTC)
