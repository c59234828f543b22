"""Isolation factories for /v1/prices (see tests/api/isolation.py).

A preview stores nothing, but it reads one kind of tenant data: the custom unit a price is in. So
B previewing a price in A's custom unit must be refused (`unit_must_be_known`), while A's succeeds.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.isolation import IsolationFactory
from tests.api.support import Headers, TestClient


def create_unit(client: TestClient, headers: Headers) -> str:
    code = f"ISO{uuid.uuid4().hex[:8].upper()}"
    response = client.post("/v1/units", json={"code": code, "scale": 3, "name": "isolation"}, headers=headers)
    assert response.status_code == 201, response.text
    return code


def _preview_in_a_unit(client: TestClient, headers: Headers) -> dict[str, Any]:
    price = {"model": "per_unit", "currency": create_unit(client, headers), "unit_price": "0.5"}
    return {"price": price, "quantity": "3"}


def _unit_unknown(response: Any) -> bool:
    return response.status_code == 422 and response.json().get("code") == "unit_must_be_known"


FACTORIES = [
    IsolationFactory(
        prefix="/v1/prices",
        create=create_unit,
        bodies={("POST", "/v1/prices/preview"): _preview_in_a_unit},
        refused={("POST", "/v1/prices/preview"): _unit_unknown},
    ),
]
