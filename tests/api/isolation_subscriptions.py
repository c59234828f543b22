"""Isolation factories for /v1/subscriptions (see tests/api/isolation.py)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.isolation import IsolationFactory
from tests.api.isolation_catalog import create_plan, create_price
from tests.api.support import Headers, TestClient


def _customer(client: TestClient, headers: Headers) -> str:
    body = {"external_id": f"c-{uuid.uuid4().hex[:12]}", "currency": "USD"}
    response = client.post("/v1/customers", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _create_body(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {"customer": _customer(client, headers), "prices": [{"price": create_price(client, headers)}]}


def create_subscription(client: TestClient, headers: Headers) -> str:
    response = client.post("/v1/subscriptions", json=_create_body(client, headers), headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def published_plan_version(client: TestClient, headers: Headers) -> str:
    code = create_plan(client, headers)
    response = client.post(f"/v1/plans/{code}/versions/1/publish", headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _migration(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {
        "from_plan_version": published_plan_version(client, headers),
        "to_plan_version": published_plan_version(client, headers),
    }


def _change(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {"prices": [{"price": create_price(client, headers)}], "effective": "period_end"}


def _quantity(client: TestClient, headers: Headers) -> dict[str, Any]:
    # A price the subscription does not hold: A is refused 422, B 404 (the subscription is A's).
    return {"price": create_price(client, headers), "quantity": 2}


FACTORIES = [
    IsolationFactory(
        prefix="/v1/subscriptions",
        create=create_subscription,
        bodies={
            ("POST", "/v1/subscriptions"): _create_body,
            ("POST", "/v1/subscriptions/migrate"): _migration,
            ("POST", "/v1/subscriptions/{id}/change"): _change,
            ("POST", "/v1/subscriptions/{id}/quantity"): _quantity,
            ("POST", "/v1/subscriptions/{id}/billing_threshold"): lambda client, headers: {"amount_minor": 5000},
        },
        path_params={
            # Sequence 0 is the start: A is refused 422 `change_not_withdrawable` (its subscription
            # is found), B 404 (the subscription is A's).
            ("POST", "/v1/subscriptions/{id}/scheduled_changes/{sequence}/withdraw"): lambda sid: {
                "id": sid,
                "sequence": "0",
            },
        },
    ),
]
