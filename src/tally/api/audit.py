"""One audit-log entry per successful mutating request (POST, PUT, PATCH, DELETE).

    actor   api_key:<key uuid>
    action  "<METHOD> <route template>", e.g. "POST /v1/api_keys/{id}/revoke"
    object  the `object` and `id` of the JSON response body when it is a resource, or what the
            endpoint put in `request.state.audit_object = (object_type, object_id)`
    request_id, and details {"status": …}

The entry is written after the endpoint has committed and before the response is sent: a client
that saw a success can find it in the log. It is its own small transaction, so a crash between the
endpoint's commit and this write loses the entry (never the change); a failed write is logged as an
error and the response still goes out. Idempotent replays are not new changes and write nothing.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from tally.api import context
from tally.api._asgi import HeldResponse, header_value
from tally.app.audit import AuditEntry, record_audit
from tally.bootstrap import Tally

logger = logging.getLogger(__name__)

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AuditMiddleware:
    def __init__(self, app: ASGIApp, tally: Tally) -> None:
        self.app = app
        self.tally = tally

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING_METHODS or context.principal_of(scope) is None:
            await self.app(scope, receive, send)
            return
        held = HeldResponse(send)
        await self.app(scope, receive, held.send)
        status = held.status
        principal = context.principal_of(scope)
        if status is not None and status < 400 and principal is not None:
            object_type, object_id = _audited_object(scope, held)
            entry = AuditEntry(
                tenant_id=principal.tenant_id,
                actor=principal.actor,
                action=f"{scope['method']} {context.route_template_of(scope) or scope['path']}",
                object_type=object_type,
                object_id=object_id,
                request_id=context.request_id_of(scope),
                details={"status": status},
            )
            try:
                await run_in_threadpool(record_audit, self.tally.engine, entry)
            except Exception:
                logger.exception("audit log entry not written", extra={"request_id": entry.request_id})
        await held.release()


def _audited_object(scope: Scope, held: HeldResponse) -> tuple[str | None, str | None]:
    declared = context.state(scope).get(context.AUDIT_OBJECT)
    if isinstance(declared, tuple) and len(declared) == 2:
        return str(declared[0]), str(declared[1])
    if held.overflowed:
        return None, None
    content_type = header_value(held.headers, b"content-type") or ""
    if "json" not in content_type:
        return None, None
    try:
        document: Any = json.loads(held.body)
    except ValueError:
        return None, None
    if isinstance(document, dict) and isinstance(document.get("id"), str):
        object_type = document.get("object")
        return (object_type if isinstance(object_type, str) else None), document["id"]
    return None, None
