"""The outer middlewares, outermost first: request context (id, logs, metrics, last-resort 500),
body-size limit, authentication. Idempotency and audit (in their own modules) sit inside these."""

from __future__ import annotations

import logging
import re
import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tally.adapters.ids import API_KEY, REQUEST, TENANT, format_id, new_id
from tally.api import context
from tally.api.auth import authenticate_scope
from tally.api.metrics import HttpMetrics
from tally.api.problems import problem_response, rejection_response
from tally.bootstrap import Tally
from tally.core.rejections import Rejected

access_logger = logging.getLogger("tally.api.access")
error_logger = logging.getLogger("tally.api.errors")

REQUEST_ID_HEADER = "x-request-id"
# A client's request id is kept if it is short and plain; anything else is replaced, not rejected.
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_id_from(headers: Headers) -> str:
    candidate = headers.get(REQUEST_ID_HEADER)
    if candidate is not None and _CLIENT_REQUEST_ID.match(candidate):
        return candidate
    return format_id(REQUEST, new_id())


class RequestContextMiddleware:
    """Gives every request an id (echoed as X-Request-Id), writes one access-log line, records
    metrics, and turns an unexpected exception into a 500 problem that leaks nothing."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_from(Headers(scope=scope))
        context.state(scope)[context.REQUEST_ID] = request_id
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            error_logger.exception(
                "unhandled error",
                extra={"request_id": request_id, "method": scope["method"], "path": scope["path"]},
            )
            if response_started:
                raise
            response = problem_response(
                "internal_error",
                "an unexpected error occurred; it has been logged under this request_id",
                request_id=request_id,
            )
            await response(scope, receive, send_with_id)
        finally:
            duration_seconds = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            route = context.route_template_of(scope)
            self.metrics.observe(method, route, status, duration_seconds)
            principal = context.principal_of(scope)
            access_logger.info(
                "request",
                extra={
                    "method": method,
                    "route": route,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(duration_seconds * 1000, 2),
                    "request_id": request_id,
                    "tenant_id": format_id(TENANT, principal.tenant_id) if principal else None,
                    "api_key_id": format_id(API_KEY, principal.api_key_id) if principal else None,
                },
            )


class RequestBodyTooLarge(HTTPException):
    def __init__(self, limit_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than {limit_bytes} bytes")


class BodySizeLimitMiddleware:
    """Refuses bodies over `body_bytes_max`: at once when Content-Length says so, otherwise as
    soon as the bytes read pass the limit (chunked uploads)."""

    def __init__(self, app: ASGIApp, body_bytes_max: int) -> None:
        self.app = app
        self.body_bytes_max = body_bytes_max

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.body_bytes_max:
            await self._refuse(scope, receive, send)
            return
        received_bytes = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received_bytes
            message = await receive()
            if message["type"] == "http.request":
                received_bytes += len(message.get("body", b""))
                if received_bytes > self.body_bytes_max:
                    raise RequestBodyTooLarge(self.body_bytes_max)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except RequestBodyTooLarge:
            # Raised outside FastAPI's handlers (a middleware was reading the body).
            if response_started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            "request_body_too_large",
            f"the request body is larger than {self.body_bytes_max} bytes",
            request_id=context.request_id_of(scope),
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


class AuthenticationMiddleware:
    """Every request under `path_prefix` needs a valid API key, checked before routing and before
    the body is parsed. Scopes are checked later, per endpoint (`require_scope`)."""

    def __init__(self, app: ASGIApp, tally: Tally, path_prefix: str = "/v1") -> None:
        self.app = app
        self.tally = tally
        self.path_prefix = path_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == self.path_prefix or path.startswith(self.path_prefix + "/")):
            try:
                await authenticate_scope(scope, self.tally)
            except Rejected as error:
                await rejection_response(error, context.request_id_of(scope))(scope, receive, send)
                return
        await self.app(scope, receive, send)
