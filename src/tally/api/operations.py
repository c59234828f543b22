"""Operator endpoints outside /v1, without authentication: liveness, readiness, metrics, docs.

Expose them to your orchestrator and monitoring, not to the internet (`/metrics` shows route names
and traffic volumes).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

from tally.adapters.postgres.health import schema_status
from tally.api.context import get_tally
from tally.api.metrics import HttpMetrics
from tally.bootstrap import Tally

DOCS_ASSETS_PATH = "/docs/assets"

router = APIRouter(tags=["Operations"])


@router.get("/healthz", summary="Liveness: the process answers (no database check)")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database answers and is migrated to this code's schema",
    responses={503: {"description": "Not ready"}},
)
def readyz(tally: Tally = Depends(get_tally)) -> JSONResponse:
    status = schema_status(tally.engine)
    body = {
        "status": "ready" if status.ready else "not_ready",
        "database": "reachable" if status.reachable else "unreachable",
        "schema_revision": status.current_revision,
        "schema_revision_expected": status.head_revision,
    }
    return JSONResponse(body, status_code=200 if status.ready else 503)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    collected: HttpMetrics = request.app.state.metrics
    payload, content_type = collected.render()
    return Response(payload, media_type=content_type)


@router.get("/docs", include_in_schema=False)
def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} — docs",
        swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon-32x32.png",
        oauth2_redirect_url=None,
    )
