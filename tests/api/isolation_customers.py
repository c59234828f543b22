"""Isolation factories for /v1/customers and /v1/test_clocks (see tests/api/isolation.py)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.isolation import IsolationFactory
from tests.api.support import Headers, TestClient


def create_test_clock(client: TestClient, headers: Headers) -> str:
    response = client.post("/v1/test_clocks", json={"frozen_time": "2030-01-01T00:00:00Z"}, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def create_customer(client: TestClient, headers: Headers) -> str:
    response = client.post("/v1/customers", json={"external_id": f"c-{uuid.uuid4().hex[:12]}"}, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _customer_on_a_clock(client: TestClient, headers: Headers) -> dict[str, Any]:
    # Made with A's headers: B creating a customer on A's clock must be refused (404).
    return {"external_id": f"c-{uuid.uuid4().hex[:12]}", "test_clock": create_test_clock(client, headers)}


def _update(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {"name": "changed"}


def _advance(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {"frozen_time": "2030-02-01T00:00:00Z"}


FACTORIES = [
    IsolationFactory(
        prefix="/v1/customers",
        create=create_customer,
        bodies={
            ("POST", "/v1/customers"): _customer_on_a_clock,
            ("POST", "/v1/customers/{id}"): _update,
            ("PATCH", "/v1/customers/{id}"): _update,
        },
    ),
    IsolationFactory(
        prefix="/v1/test_clocks",
        create=create_test_clock,
        creates_via=frozenset({("POST", "/v1/test_clocks")}),
        bodies={("POST", "/v1/test_clocks/{id}/advance"): _advance},
    ),
]
