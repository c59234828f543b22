"""Starting a job exactly once: a deterministic workflow id per unit of work.

A workflow id names what the job is about ("invoice run for customer X, period P"). Enqueueing an id
that already exists does not start a second run: it returns a handle to the first one, whatever its
state (running, finished, failed) and whatever arguments it was given. So retries, duplicate requests,
overlapping schedules and several workers all converge on one run per id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote

from dbos import DBOS, DBOSClient, SetWorkflowID, WorkflowHandle

P = ParamSpec("P")
R = TypeVar("R")

WORKFLOW_ID_LENGTH_MAX = 500
_KIND_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.")


def workflow_id(kind: str, *parts: object) -> str:
    """A deterministic workflow id: `workflow_id("invoice_run", customer_id, period_start)`.

    Parts are rendered with `str` and escaped, so no two different part lists give the same id.
    """
    if not kind or not set(kind) <= _KIND_CHARACTERS:
        raise ValueError(f"workflow id kind {kind!r} must be non-empty [a-z0-9_.]")
    if not parts:
        raise ValueError("a workflow id needs at least one part naming the unit of work")
    rendered = "/".join([kind, *(quote(str(part), safe="-_.:+@") for part in parts)])
    if len(rendered) > WORKFLOW_ID_LENGTH_MAX:
        raise ValueError(f"workflow id longer than {WORKFLOW_ID_LENGTH_MAX} characters: {rendered[:80]}…")
    return rendered


def enqueue_once(
    queue_name: str, workflow: Callable[P, R], workflow_id: str, /, *args: P.args, **kwargs: P.kwargs
) -> WorkflowHandle[R]:
    """Enqueue `workflow(*args, **kwargs)` on a declared queue under `workflow_id`, unless it exists.

    For code running where the runner runs (a workflow fanning out, a worker process). Inside a
    workflow the enqueue is itself checkpointed, so a resumed parent does not enqueue twice.
    """
    with SetWorkflowID(workflow_id):
        return DBOS.enqueue_workflow(queue_name, workflow, *args, **kwargs)


def enqueue_once_via_client(
    client: DBOSClient,
    queue_name: str,
    workflow: Callable[P, R],
    workflow_id: str,
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> WorkflowHandle[R]:
    """`enqueue_once` for processes that do not run the runner (API, CLI), through `open_client`.

    The workflow is run by a worker on the latest application version.
    """
    handle: WorkflowHandle[R] = client.enqueue(
        {"queue_name": queue_name, "workflow_name": _registered_name(workflow), "workflow_id": workflow_id},
        *args,
        **kwargs,
    )
    return handle


def _registered_name(workflow: Callable[..., Any]) -> str:
    # DBOS records a workflow under the name it was decorated with; the client needs that name.
    name = getattr(workflow, "dbos_function_name", None)
    if not isinstance(name, str):
        raise TypeError(f"{workflow!r} is not a DBOS workflow (decorate it with @DBOS.workflow(name=...))")
    return name
