"""GET /v1/usage: exact values as strings, grouping, the rejections, and freshness through ingest."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tally.app.backfill_meter_rollups import backfill_pending_versions
from tally.app.roll_up_events import roll_up_events
from tally.bootstrap import Tally
from tally.core.metering.aggregation import MeteredEvent
from tests.api.support import Headers, TestClient
from tests.metering_support import CLOCK, write_events

T0 = datetime(2029, 9, 1, tzinfo=UTC)


def _meter(client: TestClient, headers: Headers, **fields: object) -> None:
    body = {"code": "tokens", "event_type": "llm.call", "aggregation": "sum", "value_property": "tokens", **fields}
    assert client.post("/v1/meters", json=body, headers=headers).status_code == 201


def _params(**overrides: str) -> dict[str, str]:
    return {
        "customer": "acme",
        "meter": "tokens",
        "from": T0.isoformat(),
        "to": (T0 + timedelta(days=2)).isoformat(),
    } | overrides


def test_usage_values_are_exact_strings(
    client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    _meter(client, admin_headers, group_by=["model", "region"])
    backfill_pending_versions(tally.engine, CLOCK)
    write_events(
        tally.engine,
        tenant_id,
        [
            MeteredEvent("a", "acme", "llm.call", T0 + timedelta(hours=1), {"tokens": Decimal("0.1"), "model": "x"}),
            MeteredEvent("b", "acme", "llm.call", T0 + timedelta(hours=30), {"tokens": Decimal("0.2"), "model": "x"}),
            MeteredEvent("c", "acme", "llm.call", T0 + timedelta(hours=30), {"tokens": "lots", "model": "y"}),
        ],
    )
    roll_up_events(tally.engine)
    total = client.get("/v1/usage", params=_params(), headers=admin_headers)
    assert total.status_code == 200, total.text
    body = total.json()
    assert (body["object"], body["meter_version"], body["skipped_events"], body["source"]) == ("usage", 1, 1, "rollups")
    assert [(row["value"], row["event_count"], row["group"]) for row in body["data"]] == [("0.3", 2, {})]
    daily = client.get("/v1/usage", params=_params(granularity="day", group_by="model"), headers=admin_headers).json()[
        "data"
    ]
    assert [(row["from"][:10], row["group"], row["value"], row["skipped_events"]) for row in daily] == [
        ("2029-09-01", {"model": "x"}, "0.1", 0),
        ("2029-09-02", {"model": "x"}, "0.2", 0),
        ("2029-09-01", {"model": "y"}, "0", 0),
        ("2029-09-02", {"model": "y"}, "0", 1),
    ]


def test_rejections(client: TestClient, admin_headers: Headers) -> None:
    _meter(client, admin_headers)
    for params, status, code in (
        (_params(meter="nope"), 404, "meter_not_found"),
        (_params(to=T0.isoformat()), 422, "time_range_inverted"),
        (_params(**{"from": (T0 + timedelta(days=3)).isoformat()}), 422, "time_range_inverted"),
        (_params(to=(T0 + timedelta(days=400)).isoformat(), granularity="hour"), 422, "usage_buckets_exceed_limit"),
        (_params(group_by="model"), 422, "group_by_not_in_meter"),
        (_params(granularity="week"), 422, "value_not_allowed"),
        (_params(meter_version="2"), 404, "meter_version_not_found"),
        (_params(to="2029-09-03T00:00:00"), 422, "datetime_must_have_timezone"),
        (_params(timezone="Europe/Paris"), 422, "timezone_not_supported"),
    ):
        answer = client.get("/v1/usage", params=params, headers=admin_headers)
        assert (answer.status_code, answer.json()["code"]) == (status, code), params
    limit = client.get(
        "/v1/usage",
        params=_params(to=(T0 + timedelta(days=400)).isoformat(), granularity="hour"),
        headers=admin_headers,
    )
    assert "BUCKETS_MAX = 8784" in limit.json()["detail"]


def test_an_ingested_event_is_visible_at_once(client: TestClient, admin_headers: Headers, tally: Tally) -> None:
    """Through the real ingest endpoint: visible on the next query, before any roll-up."""
    _meter(client, admin_headers)
    backfill_pending_versions(tally.engine, CLOCK)
    now = datetime.now(UTC)
    window = {
        "customer": "acme",
        "meter": "tokens",
        "from": (now - timedelta(hours=2)).isoformat(),
        "to": (now + timedelta(hours=1)).isoformat(),
    }
    event = {
        "id": "fresh-1",
        "customer": "acme",
        "type": "llm.call",
        "timestamp": now.isoformat(),
        "properties": {"tokens": 42},
    }
    started = time.monotonic()
    ingested = client.post("/v1/events", json=event, headers=admin_headers)
    assert ingested.status_code in (200, 201, 202), ingested.text
    visible = client.get("/v1/usage", params=window, headers=admin_headers).json()
    assert visible["data"][0]["value"] == "42"
    assert time.monotonic() - started < 1.0
