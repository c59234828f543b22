"""Isolation factories for /v1/meters and /v1/usage (see tests/api/isolation.py)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.isolation import IsolationFactory
from tests.api.support import Headers, TestClient


def create_meter(client: TestClient, headers: Headers) -> str:
    """A meter of the tenant of `headers`; its code is its id on the wire."""
    code = f"m_{uuid.uuid4().hex[:12]}"
    response = client.post(
        "/v1/meters",
        json={"code": code, "event_type": "api.call", "aggregation": "sum", "value_property": "tokens"},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return code


def _usage_query(code: str) -> dict[str, str]:
    return {"customer": "acme", "meter": code, "from": "2030-01-01T00:00:00Z", "to": "2030-02-01T00:00:00Z"}


def _not_found(response: Any) -> bool:
    return response.status_code == 404 and response.json().get("code") == "meter_not_found"


def _label_body(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {"description": "changed"}


FACTORIES = [
    IsolationFactory(
        prefix="/v1/meters",
        create=create_meter,
        creates_via=frozenset({("POST", "/v1/meters")}),
        bodies={("PATCH", "/v1/meters/{code}"): _label_body, ("POST", "/v1/meters/{code}"): _label_body},
    ),
    IsolationFactory(
        prefix="/v1/usage",
        create=create_meter,
        query={("GET", "/v1/usage"): _usage_query},
        refused={("GET", "/v1/usage"): _not_found},
    ),
]
