"""`Idempotency-Key` on every POST, once for the whole API (an ASGI middleware).

Per tenant and key: the first request runs and its response (2xx or 4xx) is stored; a repeat with
the same method, path, body and API key gets that response again with `Idempotent-Replayed: true`;
a repeat with anything different gets 422 `idempotency_key_reused`; a repeat while the first still
runs gets 409 `idempotency_request_in_progress`. A 5xx is not stored, so the client may simply retry.

A successful response that carries a secret (a new API key) is never written to the database: the
endpoint calls `mark_response_secret(request)`, and a replay gets 409
`idempotent_response_withheld` naming the object that was created.

The stored response is written before it is sent, so a client that saw a response always gets it
replayed. What this cannot do is make the endpoint's own commit and the stored response one
transaction: if the server dies between them, the key's lock expires and a retry runs the endpoint
again. Endpoints that move money therefore also pass the key (`request.state.idempotency_key`) to
their own transactional idempotency (the ledger does).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from tally.api import context
from tally.api._asgi import HeldResponse, read_body, replay_receive
from tally.api.problems import PROBLEM_MEDIA_TYPE, problem_body, rejection_response
from tally.app.idempotency import (
    IdempotentRequest,
    Replay,
    StoredResponse,
    claim_idempotency_key,
    complete_idempotent_request,
    release_idempotent_request,
)
from tally.bootstrap import Tally
from tally.core.rejections import Rejected

logger = logging.getLogger(__name__)

HEADER = "idempotency-key"
REPLAYED_HEADER = "idempotent-replayed"
# Headers that belong to one transmission, not to the response: never stored or replayed.
_TRANSIENT_HEADERS = frozenset(
    {"content-length", "date", "server", "connection", "transfer-encoding", "x-request-id", REPLAYED_HEADER}
)


def canonical_body(body: bytes) -> bytes:
    """JSON bodies compare by content (key order and spacing do not matter); others byte for byte."""
    if not body.strip():
        return b""
    try:
        document = json.loads(body)
    except ValueError:
        return body
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def fingerprint(method: str, path: str, body: bytes, api_key_id: uuid.UUID | None = None) -> bytes:
    """What makes two requests "the same": method, path and query, canonical body, and the API key
    (so one key's stored response is never handed to another key of the tenant)."""
    digest = hashlib.sha256()
    digest.update(method.encode() + b"\n" + path.encode() + b"\n")
    digest.update((api_key_id.bytes if api_key_id else b"") + b"\n")
    digest.update(canonical_body(body))
    return digest.digest()


def _target(scope: Scope) -> str:
    path = str(scope["path"])
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    return f"{path}?{query}" if query else path


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, tally: Tally) -> None:
        self.app = app
        self.tally = tally

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        key = Headers(scope=scope).get(HEADER)
        principal = context.principal_of(scope)
        if key is None or principal is None:
            # No key: not idempotent. No principal: not an authenticated route; nothing to scope by.
            await self.app(scope, receive, send)
            return
        request_id = context.request_id_of(scope)
        body = await read_body(receive)
        settings = self.tally.settings
        target = _target(scope)
        try:
            request = IdempotentRequest(
                tenant_id=principal.tenant_id,
                key=key,
                method=scope["method"],
                path=target,
                fingerprint=fingerprint(scope["method"], target, body, principal.api_key_id),
            )
            claim = await run_in_threadpool(
                claim_idempotency_key,
                self.tally.engine,
                request,
                now=self.tally.clock.now(),
                lock_seconds=settings.idempotency_lock_seconds,
                retention_hours=settings.idempotency_retention_hours,
            )
        except Rejected as error:
            response = rejection_response(error, request_id)
            if error.rejection.code == "idempotency_request_in_progress":
                response.headers["Retry-After"] = "1"
            await response(scope, receive, send)
            return
        if isinstance(claim, Replay):
            await _send_stored(claim.response, send)
            return

        context.state(scope)[context.IDEMPOTENCY_KEY] = key
        held = HeldResponse(send)
        settled = False
        try:
            await self.app(scope, replay_receive(body, receive), held.send)
            status = held.status
            if status is not None and status < 500 and not held.overflowed:
                stored = StoredResponse(status=status, headers=_storable(held.headers), body=held.body)
                if status < 400 and context.state(scope).get(context.RESPONSE_HAS_SECRET):
                    stored = _secret_withheld(stored, request_id)
                settled = await run_in_threadpool(
                    complete_idempotent_request,
                    self.tally.engine,
                    request,
                    claim.lock_token,
                    stored,
                    now=self.tally.clock.now(),
                )
                if not settled:
                    logger.warning(
                        "idempotent request outlived its lock and was taken over; response not stored",
                        extra={"request_id": request_id, "lock_seconds": settings.idempotency_lock_seconds},
                    )
            elif held.overflowed:
                logger.warning("response too large to store for idempotent replay", extra={"request_id": request_id})
            await held.release()
        finally:
            if not settled:
                # 5xx, exception, cancellation or an unstorable response: forget the key so a retry
                # runs again. Shielded: this must happen even when the request is being cancelled.
                with anyio.CancelScope(shield=True):
                    await run_in_threadpool(release_idempotent_request, self.tally.engine, request, claim.lock_token)


def _secret_withheld(response: StoredResponse, request_id: str | None) -> StoredResponse:
    """What a replay gets instead of a response that carried a secret (secrets are never stored)."""
    extensions: dict[str, object] = {"original_status": response.status}
    try:
        document = json.loads(response.body)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("id"), str):
        extensions["object_id"] = document["id"]
    body = problem_body(
        "idempotent_response_withheld",
        "the first request with this Idempotency-Key succeeded, but its response held a secret, which "
        "is never stored; look the object up (object_id) instead of retrying",
        request_id=request_id,
        extensions=extensions,
    )
    return StoredResponse(
        status=body["status"],
        headers=[["content-type", PROBLEM_MEDIA_TYPE]],
        body=json.dumps(body, separators=(",", ":")).encode(),
    )


def _storable(headers: list[tuple[bytes, bytes]]) -> list[list[str]]:
    return [
        [name.decode("latin-1").lower(), value.decode("latin-1")]
        for name, value in headers
        if name.decode("latin-1").lower() not in _TRANSIENT_HEADERS
    ]


async def _send_stored(response: StoredResponse, send: Send) -> None:
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    headers.append((REPLAYED_HEADER.encode(), b"true"))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body, "more_body": False})
