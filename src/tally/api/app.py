"""The HTTP API: `create_app(tally)` builds it. Nothing happens at import time.

Request path through the app, outermost first:

    RequestContextMiddleware   request id, access log, metrics, last-resort 500 problem
    BodySizeLimitMiddleware    413 before reading an oversized body
    AuthenticationMiddleware   /v1/*: API key → Principal, else 401
    IdempotencyMiddleware      POST + Idempotency-Key: claim, replay, or refuse
    AuditMiddleware            successful POST/PUT/PATCH/DELETE → audit_log
    FastAPI                    routing, validation, problem+json handlers, endpoints
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

import tally as tally_package
from tally.api import operations
from tally.api.audit import AuditMiddleware
from tally.api.idempotency import IdempotencyMiddleware
from tally.api.metrics import HttpMetrics
from tally.api.middleware import AuthenticationMiddleware, BodySizeLimitMiddleware, RequestContextMiddleware
from tally.api.problems import PROBLEM_RESPONSES, install_problem_handlers
from tally.api.routers import load_routers
from tally.api.routes import RouteTemplates
from tally.bootstrap import Tally

API_PREFIX = "/v1"

_DESCRIPTION = """
Usage-based billing with a double-entry ledger.

Authenticate with an API key: `Authorization: Bearer tally_sk_…`. Errors are
`application/problem+json` with a stable `code`. Every POST accepts an `Idempotency-Key`.
See docs/api.md for the conventions.
"""


def create_app(tally: Tally, *, close_tally_on_shutdown: bool = False) -> FastAPI:
    """The ASGI app serving `tally`. `close_tally_on_shutdown`: the app owns it (ASGI factories)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if close_tally_on_shutdown:
                tally.close()

    app = FastAPI(
        title="Tally API",
        version=tally_package.__version__,
        description=_DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.tally = tally
    app.state.metrics = HttpMetrics()
    app.state.route_templates = RouteTemplates(app.routes)

    install_problem_handlers(app)
    app.include_router(operations.router)
    app.mount(
        operations.DOCS_ASSETS_PATH,
        StaticFiles(directory=str(swagger_ui_path)),
        name="docs-assets",
    )
    for router in load_routers():
        app.include_router(router, prefix=API_PREFIX, responses=PROBLEM_RESPONSES)

    # add_middleware wraps what is already there: the last one added is the outermost.
    app.add_middleware(AuditMiddleware, tally=tally)
    app.add_middleware(IdempotencyMiddleware, tally=tally)
    app.add_middleware(AuthenticationMiddleware, tally=tally, path_prefix=API_PREFIX)
    app.add_middleware(BodySizeLimitMiddleware, body_bytes_max=tally.settings.request_body_bytes_max)
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    return app
