"""The registry behind tests/api/test_isolation.py.

Each resource registers how to make one of its objects, in its own module named
`tests/api/isolation_<resource>.py` exposing `FACTORIES: list[IsolationFactory]`; modules are found
by name, so adding a resource touches no shared file. Example (tests/api/isolation_api_keys.py):

    def _api_key(client, headers):
        return client.post("/v1/api_keys", json={...}, headers=headers).json()["id"]

    FACTORIES = [
        IsolationFactory(prefix="/v1/api_keys", create=_api_key, creates_via=frozenset({("POST", "/v1/api_keys")})),
    ]
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import tests.api
from tests.api.support import Headers, TestClient

Route = tuple[str, str]  # (method, path template)
Body = Callable[[TestClient, Headers], dict[str, Any]]

# Operator endpoints outside /v1: no API key, no tenant data.
PUBLIC = frozenset({"/openapi.json", "/docs", "/docs/assets", "/healthz", "/readyz", "/metrics"})


@dataclass(frozen=True)
class IsolationFactory:
    # Routes whose path template starts with this are covered (the longest matching prefix wins).
    prefix: str
    # Creates one object as the tenant of `headers`; returns its id as on the wire.
    create: Callable[[TestClient, Headers], str]
    # Create routes (no path parameters) whose body references no other object.
    creates_via: frozenset[Route] = frozenset()
    # Request bodies per route, made with tenant A's headers (so they may create and reference A's
    # objects). Needed for create routes that reference other objects, and for any route whose body
    # is required: B's request must fail only because the objects are A's.
    bodies: Mapping[Route, Body] = field(default_factory=dict)
    # Path parameter values for a route, given the created id; default: every parameter is that id.
    path_params: Mapping[Route, Callable[[str], dict[str, str]]] = field(default_factory=dict)
    # List-like routes (GET, no path parameters) that do not show this kind of object.
    not_listed: frozenset[str] = frozenset()
    # How a refusal of B's request that references A's objects looks, for routes where it is not a
    # 404 (e.g. 422 `account_must_exist` for an id in a body, or a batch's per-item rejections).
    refused: Mapping[Route, Callable[[Any], bool]] = field(default_factory=dict)
    # Query parameters for GET routes without path parameters (e.g. a report naming A's object),
    # given the created id. With an entry in `refused`, B's answer must be refused instead of empty.
    query: Mapping[Route, Callable[[str], dict[str, str]]] = field(default_factory=dict)


def all_factories() -> list[IsolationFactory]:
    factories: list[IsolationFactory] = []
    for module_info in pkgutil.iter_modules(tests.api.__path__):
        if module_info.name.startswith("isolation_"):
            module = importlib.import_module(f"tests.api.{module_info.name}")
            factories.extend(module.FACTORIES)
    return factories


def factory_for(factories: list[IsolationFactory], path: str) -> IsolationFactory | None:
    matching = [factory for factory in factories if path.startswith(factory.prefix)]
    return max(matching, key=lambda factory: len(factory.prefix)) if matching else None
