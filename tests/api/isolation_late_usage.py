"""Isolation factories for /v1/late_usage and /v1/account/billing_settings (see tests/api/isolation.py).

A late usage flag is made the way a client meets one: a customer on a test clock with a usage
price, a month billed and finalized, then an event for that month sent after it. One flag per
tenant serves every route.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from tests.api.isolation import IsolationFactory
from tests.api.support import Headers, TestClient

_flags: dict[str, tuple[str, str]] = {}  # tenant -> (flag id, customer id)


def _ok(response: object, status: int = 200) -> dict[str, object]:
    assert getattr(response, "status_code", None) == status, getattr(response, "text", response)
    body = response.json()  # type: ignore[attr-defined]
    assert isinstance(body, dict)
    return body


def late_usage_flag(client: TestClient, headers: Headers) -> tuple[str, str]:
    """(flag id, customer id) of a flag of the tenant of `headers`."""
    tenant = str(sorted(headers.items()))
    if tenant in _flags:
        return _flags[tenant]
    suffix = uuid.uuid4().hex[:8]
    meter, product, event_type = f"late_{suffix}", f"lateprod_{suffix}", f"late.call.{suffix}"
    _ok(
        client.post(
            "/v1/meters", json={"code": meter, "event_type": event_type, "aggregation": "count"}, headers=headers
        ),
        201,
    )
    _ok(client.post("/v1/products", json={"code": product}, headers=headers), 201)
    price = _ok(
        client.post(
            "/v1/prices",
            json={
                "code": f"lateprice_{suffix}",
                "product": product,
                "price": {"model": "per_unit", "currency": "USD", "meter": meter, "unit_price": "0.01"},
            },
            headers=headers,
        ),
        201,
    )["id"]
    start = (datetime.now(UTC) - timedelta(days=45)).replace(hour=0, minute=0, second=0, microsecond=0)
    clock = _ok(client.post("/v1/test_clocks", json={"frozen_time": start.isoformat()}, headers=headers), 201)["id"]
    external = f"late-{suffix}"
    customer = _ok(
        client.post(
            "/v1/customers", json={"external_id": external, "currency": "USD", "test_clock": clock}, headers=headers
        ),
        201,
    )["id"]
    _ok(
        client.post("/v1/subscriptions", json={"customer": customer, "prices": [{"price": price}]}, headers=headers),
        201,
    )
    advanced = (start + timedelta(days=35)).isoformat()
    _ok(client.post(f"/v1/test_clocks/{clock}/advance", json={"frozen_time": advanced}, headers=headers))
    run = _ok(client.post("/v1/invoices/run", json={"customer": customer}, headers=headers))
    invoice = run["customers"][0]["invoice"]  # type: ignore[index]
    if invoice is not None:  # the clock's own hooks may have finalized it already
        client.post(f"/v1/invoices/{invoice}/finalize", json={}, headers=headers)
    event = {
        "id": f"late-{suffix}",
        "customer": external,
        "type": event_type,
        "timestamp": (start + timedelta(days=1)).isoformat(),
    }
    result = _ok(client.post("/v1/events", json=event, headers=headers))
    assert result["results"][0]["late"] is True, result  # type: ignore[index]
    flags = _ok(client.get("/v1/late_usage", params={"customer": customer}, headers=headers))
    (flag,) = flags["data"]  # type: ignore[misc]
    _flags[tenant] = (str(flag["id"]), str(customer))
    return _flags[tenant]


def _customer_query(flag_id: str) -> dict[str, str]:
    (customer,) = [customer for flag, customer in _flags.values() if flag == flag_id]
    return {"customer": customer}


def _flag_id(client: TestClient, headers: Headers) -> str:
    return late_usage_flag(client, headers)[0]


def _settings(client: TestClient, headers: Headers) -> str:
    """A's settings, told apart by the moment A recorded them (B's never show it)."""
    body = _ok(client.put("/v1/account/billing_settings", json={"late_usage_policy": "separate"}, headers=headers))
    return str(body["recorded_at"])


FACTORIES = [
    IsolationFactory(
        prefix="/v1/late_usage",
        create=_flag_id,
        # B naming A's customer is refused as an unknown customer (A's own listing shows the flag).
        query={("GET", "/v1/late_usage"): _customer_query},
        refused={("GET", "/v1/late_usage"): lambda response: response.status_code == 404},
    ),
    IsolationFactory(
        prefix="/v1/account/billing_settings",
        create=_settings,
        creates_via=frozenset({("PUT", "/v1/account/billing_settings")}),
    ),
]
