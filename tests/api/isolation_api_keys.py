"""Isolation factories for /v1/api_keys (see tests/api/isolation.py)."""

from __future__ import annotations

from tests.api.isolation import IsolationFactory
from tests.api.support import Headers, TestClient


def create_api_key(client: TestClient, headers: Headers) -> str:
    response = client.post("/v1/api_keys", json={"name": "isolation", "scopes": ["read"]}, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


FACTORIES = [
    IsolationFactory(prefix="/v1/api_keys", create=create_api_key, creates_via=frozenset({("POST", "/v1/api_keys")})),
]
