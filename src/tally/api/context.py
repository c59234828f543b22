"""What one request carries through the middlewares into the endpoints, kept in `scope["state"]`.

Endpoints read it as `request.state.<name>`; middlewares through the helpers below.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.types import Scope

from tally.api.routes import RouteTemplates
from tally.app.api_keys import Principal
from tally.bootstrap import Tally

REQUEST_ID = "request_id"
PRINCIPAL = "principal"
IDEMPOTENCY_KEY = "idempotency_key"
# Set by an endpoint to name the object it changed when the response body does not show it:
# `request.state.audit_object = ("api_key", "key_…")`.
AUDIT_OBJECT = "audit_object"
# Set by an endpoint whose successful response carries a secret (`mark_response_secret`): the
# response is then never stored for idempotent replay (see tally.api.idempotency).
RESPONSE_HAS_SECRET = "response_has_secret"  # noqa: S105 - a state key, not a secret


def mark_response_secret(request: Request) -> None:
    state(request.scope)[RESPONSE_HAS_SECRET] = True


def state(scope: Scope) -> dict[str, Any]:
    return scope.setdefault("state", {})  # type: ignore[no-any-return]


def request_id_of(scope: Scope) -> str | None:
    value = state(scope).get(REQUEST_ID)
    return value if isinstance(value, str) else None


def principal_of(scope: Scope) -> Principal | None:
    value = state(scope).get(PRINCIPAL)
    return value if isinstance(value, Principal) else None


def route_template_of(scope: Scope) -> str | None:
    """The matched route's full path template (`/v1/api_keys/{id}`), once routing has happened."""
    route = scope.get("route")
    if route is None:
        return None
    templates = getattr(getattr(scope.get("app"), "state", None), "route_templates", None)
    if isinstance(templates, RouteTemplates):
        template = templates.template_for(route, scope)
        if template is not None:
            return template
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


def get_tally(request: Request) -> Tally:
    """Dependency: the composition root the app was built with."""
    tally = request.app.state.tally
    if not isinstance(tally, Tally):
        raise TypeError("app.state.tally is not set: build the app with tally.api.app.create_app")
    return tally
