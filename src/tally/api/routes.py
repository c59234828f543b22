"""Route templates (`/v1/api_keys/{id}`) for logs, metrics and the audit log.

FastAPI keeps included routers as they are: the matched route object knows only its path inside
its router (`/{id}`), not the prefixes it was included under. This table maps each route object to
its full template, from FastAPI's own view of the app, and refreshes itself when routes are added.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute
from starlette.types import Scope


class RouteTemplates:
    def __init__(self, routes: list[BaseRoute]) -> None:
        self._routes = routes
        self._lock = threading.Lock()
        self._by_route: dict[int, list[Any]] = {}

    def _rebuild(self) -> None:
        by_route: dict[int, list[Any]] = {}
        for context in iter_route_contexts(self._routes):
            by_route.setdefault(id(context.original_route), []).append(context)
        self._by_route = by_route

    def template_for(self, route: BaseRoute, scope: Scope) -> str | None:
        with self._lock:
            contexts = self._by_route.get(id(route))
            if contexts is None:
                self._rebuild()
                contexts = self._by_route.get(id(route), [])
        if len(contexts) == 1:
            return _template(contexts[0])
        path = str(scope.get("path", ""))
        for context in contexts:  # one route included under several prefixes: match the path
            regex = getattr(context, "path_regex", None)
            if regex is not None and regex.match(path):
                return _template(context)
        return None


def _template(context: Any) -> str | None:
    path = context.path
    if isinstance(path, str):
        return path
    return None
