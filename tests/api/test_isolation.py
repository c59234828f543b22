"""Tenant isolation, proven for every route the app has.

The routes are read from the app itself, so a new endpoint is covered as soon as it exists, and
this test fails until it is classified. Each /v1 route is checked as follows:

- without an API key: 401 `api_key_required`;
- with path parameters (`/v1/things/{id}`): an object is created as tenant A, and tenant B's admin
  key gets 404 (while A's own key does not);
- GET without parameters (a list): A's object is listed for A and never shown to B;
- POST/PUT/PATCH/DELETE without parameters (a create): either it references no other object
  (`creates_via`), or B's request referencing A's objects (`bodies`) gets 404.

Routes outside /v1 must be in `PUBLIC`. Adding a resource: a module tests/api/isolation_<name>.py
with its `FACTORIES` (see tests/api/isolation.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, FastAPI
from fastapi.routing import iter_route_contexts

from tally.api.auth import Principal, require_scope
from tally.app.api_keys import create_api_key
from tally.app.tenants import create_tenant
from tally.bootstrap import Tally
from tests.api.conftest import MakeHeaders
from tests.api.isolation import PUBLIC, IsolationFactory, all_factories, factory_for
from tests.api.isolation_api_keys import create_api_key as create_api_key_over_http
from tests.api.support import Headers, TestClient, app_with, bearer


def _routes(app: FastAPI) -> list[tuple[str, frozenset[str]]]:
    routes = []
    for context in iter_route_contexts(app.routes):
        path = context.path
        assert isinstance(path, str)
        routes.append((path, frozenset(context.methods or ()) - {"HEAD", "OPTIONS"}))
    return routes


def _fill(path: str, values: Mapping[str, str], default: str) -> str:
    return re.sub(r"\{([^}:]+)(:[^}]*)?\}", lambda match: values.get(match.group(1), default), path)


def isolation_failures(
    app: FastAPI, client: TestClient, factories: list[IsolationFactory], headers_a: Headers, headers_b: Headers
) -> tuple[list[str], int]:
    failures: list[str] = []
    checked = 0
    for path, methods in _routes(app):
        if not path.startswith("/v1/"):
            if path not in PUBLIC:
                failures.append(f"{path}: outside /v1 but not in PUBLIC; classify it")
            continue
        factory = factory_for(factories, path)
        for method in sorted(methods):
            route = (method, path)
            name = f"{method} {path}"
            anonymous = client.request(method, _fill(path, {}, "x"))
            if anonymous.status_code != 401 or anonymous.json().get("code") != "api_key_required":
                failures.append(f"{name}: without a key answered {anonymous.status_code}, not 401")
            if factory is None:
                failures.append(f"{name}: no IsolationFactory covers it; add one (tests/api/isolation.py)")
                continue
            body = factory.bodies.get(route)
            if "{" in path:
                object_id = factory.create(client, headers_a)
                values = factory.path_params[route](object_id) if route in factory.path_params else {}
                url = _fill(path, values, object_id)
                payload = {"json": body(client, headers_a)} if body else {}
                as_b = client.request(method, url, headers=headers_b, **payload)
                if as_b.status_code != 404:
                    failures.append(f"{name}: tenant B got {as_b.status_code} for A's object, not 404")
                as_a = client.request(method, url, headers=headers_a, **payload)
                if as_a.status_code == 404:
                    failures.append(f"{name}: tenant A gets 404 for its own object, so the check proves nothing")
            elif method == "GET":
                object_id = factory.create(client, headers_a)
                params = factory.query[route](object_id) if route in factory.query else None
                as_b = client.get(path, headers=headers_b, params=params)
                if route in factory.refused:
                    if not factory.refused[route](as_b):
                        failures.append(f"{name}: B asking about A's {object_id} got {as_b.status_code}, not refused")
                elif as_b.status_code != 200 or object_id in as_b.text:
                    failures.append(f"{name}: tenant B's answer ({as_b.status_code}) shows A's {object_id}")
                as_a = client.get(path, headers=headers_a, params=params)
                if path not in factory.not_listed and object_id not in as_a.text:
                    failures.append(f"{name}: A's {object_id} is not listed for A (or add the path to not_listed)")
            elif body is not None:
                as_b = client.request(method, path, headers=headers_b, json=body(client, headers_a))
                refused = factory.refused.get(route, lambda response: response.status_code == 404)
                if not refused(as_b):
                    failures.append(f"{name}: B referencing A's objects got {as_b.status_code}, not refused")
                as_a = client.request(method, path, headers=headers_a, json=body(client, headers_a))
                if refused(as_a):
                    failures.append(f"{name}: A's own request is refused too, so the check proves nothing")
            elif route not in factory.creates_via:
                failures.append(f"{name}: give its factory a body referencing A's objects, or list it in creates_via")
            checked += 1
    return failures, checked


def test_every_route_keeps_tenants_apart(
    api_app: FastAPI, client: TestClient, tally: Tally, make_headers: MakeHeaders
) -> None:
    headers_a = make_headers(create_tenant(tally.engine, "isolation-a"))
    headers_b = make_headers(create_tenant(tally.engine, "isolation-b"))
    failures, checked = isolation_failures(api_app, client, all_factories(), headers_a, headers_b)
    assert not failures, "tenant isolation:\n" + "\n".join(failures)
    assert checked >= 4  # the API key routes at least


def test_the_harness_catches_leaks_and_unclassified_routes(tally: Tally) -> None:
    app = app_with(tally)
    router = APIRouter()

    @router.get("/v1/api_keys_leaky/{id}")
    def leaky(id: str, principal: Annotated[Principal, require_scope("read")]) -> dict[str, str]:
        return {"id": id}  # forgets the tenant: answers for anyone's id

    @router.get("/unlisted")
    def unlisted() -> dict[str, str]:
        return {}

    app.include_router(router)
    client = TestClient(app)
    headers_a = bearer(create_api_key(tally.engine, create_tenant(tally.engine, "leak-a"), "a", ["admin"])[1])
    headers_b = bearer(create_api_key(tally.engine, create_tenant(tally.engine, "leak-b"), "b", ["admin"])[1])
    factories = [
        IsolationFactory(
            prefix="/v1/api_keys",
            create=create_api_key_over_http,
            creates_via=frozenset({("POST", "/v1/api_keys")}),
        )
    ]
    failures, _ = isolation_failures(app, client, factories, headers_a, headers_b)
    assert any(failure.startswith("GET /v1/api_keys_leaky/{id}: tenant B got 200") for failure in failures)
    assert any(failure.startswith("/unlisted: outside /v1") for failure in failures)
