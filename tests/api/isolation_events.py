"""Isolation factories for /v1/events (see tests/api/isolation.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.api.isolation import IsolationFactory
from tests.api.support import Headers, TestClient


def create_event(client: TestClient, headers: Headers) -> str:
    event_id = f"iso-{uuid.uuid4().hex}"
    body = {
        "id": event_id,
        "customer": "cus_isolation",
        "type": "api_call",
        "timestamp": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "properties": {"tokens": 1},
    }
    response = client.post("/v1/events", json=body, headers=headers)
    assert response.status_code == 200 and response.json()["results"][0]["result"] == "accepted", response.text
    return event_id


def _amend_body(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {"properties": {"tokens": 2}}


def _retract_body(client: TestClient, headers: Headers) -> dict[str, Any]:
    return {"reason": "isolation"}


FACTORIES = [
    IsolationFactory(
        prefix="/v1/events",
        create=create_event,
        # An event references no other object: its customer is the client's own id, not a tally object.
        creates_via=frozenset({("POST", "/v1/events")}),
        bodies={
            ("POST", "/v1/events/{id:path}/amend"): _amend_body,
            ("POST", "/v1/events/{id:path}/retract"): _retract_body,
        },
    ),
]
