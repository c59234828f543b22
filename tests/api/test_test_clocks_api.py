"""/v1/test_clocks over HTTP: create, advance (hooks see the new time), bad times, delete rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from tally.app.customer_clock import clock_for_customer
from tally.app.test_clock_hooks import ClockAdvance, register_advance_hook, unregister_advance_hook
from tests.api.support import Headers, TestClient


def _problem(response: Any) -> tuple[int, str, str | None]:
    body = response.json()
    return response.status_code, body["code"], body["field"]


@pytest.fixture
def seen() -> Iterator[list[str]]:
    times: list[str] = []

    def record(engine: Engine, advance: ClockAdvance) -> None:
        for customer in advance.customer_ids:
            times.append(clock_for_customer(engine, advance.tenant_id, customer).now().isoformat())

    register_advance_hook("tests.api_record", record)
    yield times
    unregister_advance_hook("tests.api_record")


def test_a_customer_on_a_clock_lives_at_its_time(client: TestClient, admin_headers: Headers, seen: list[str]) -> None:
    created = client.post(
        "/v1/test_clocks",
        json={"frozen_time": "2030-01-31T00:00:00+01:00", "name": "Leap year", "metadata": {"suite": "billing"}},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    clock = created.json()
    assert clock["id"].startswith("clk_")
    assert (clock["object"], clock["name"], clock["status"], clock["metadata"]) == (
        "test_clock",
        "Leap year",
        "ready",
        {"suite": "billing"},
    )
    assert clock["frozen_time"] == "2030-01-30T23:00:00Z"
    customer = client.post(
        "/v1/customers", json={"external_id": "sim", "test_clock": clock["id"]}, headers=admin_headers
    ).json()
    assert (customer["test_clock"], customer["created_at"]) == (clock["id"], "2030-01-30T23:00:00Z")

    advanced = client.post(
        f"/v1/test_clocks/{clock['id']}/advance", json={"frozen_time": "2030-02-28T00:00:00Z"}, headers=admin_headers
    )
    assert advanced.status_code == 200, advanced.text
    assert (advanced.json()["frozen_time"], advanced.json()["status"]) == ("2030-02-28T00:00:00Z", "ready")
    assert seen == ["2030-02-28T00:00:00+00:00"]
    assert client.get(f"/v1/test_clocks/{clock['id']}", headers=admin_headers).json() == advanced.json()
    on_clock = client.get("/v1/customers", params={"test_clock": clock["id"]}, headers=admin_headers).json()
    assert [item["id"] for item in on_clock["data"]] == [customer["id"]]
    listed = client.get("/v1/test_clocks", headers=admin_headers).json()
    assert [item["id"] for item in listed["data"]] == [clock["id"]]

    refused = client.delete(f"/v1/test_clocks/{clock['id']}", headers=admin_headers)
    assert _problem(refused) == (409, "test_clock_has_customers", "id")


@pytest.mark.parametrize(
    ("frozen_time", "status", "code"),
    [
        ("2029-12-31T23:59:59Z", 422, "test_clock_cannot_go_backwards"),
        ("2032-01-02T00:00:01Z", 422, "test_clock_advance_exceeds_limit"),
        ("2030-02-01T00:00:00", 422, "datetime_must_have_timezone"),
        ("soon", 422, "value_must_be_datetime"),
    ],
)
def test_bad_advances(client: TestClient, admin_headers: Headers, frozen_time: str, status: int, code: str) -> None:
    clock = client.post("/v1/test_clocks", json={"frozen_time": "2030-01-01T00:00:00Z"}, headers=admin_headers).json()
    response = client.post(
        f"/v1/test_clocks/{clock['id']}/advance", json={"frozen_time": frozen_time}, headers=admin_headers
    )
    assert _problem(response) == (status, code, "frozen_time")
    after = client.get(f"/v1/test_clocks/{clock['id']}", headers=admin_headers).json()
    assert (after["frozen_time"], after["status"]) == ("2030-01-01T00:00:00Z", "ready")


def test_bad_creates_and_delete(client: TestClient, admin_headers: Headers) -> None:
    for body, code in (
        ({}, "field_required"),
        ({"frozen_time": "2030-01-01T00:00:00Z", "speed": 2}, "unknown_field"),
        ({"frozen_time": "2030-01-01T00:00:00Z", "name": ""}, "name_invalid"),
        ({"frozen_time": "2400-01-01T00:00:00Z"}, "test_clock_frozen_time_out_of_range"),
    ):
        assert _problem(client.post("/v1/test_clocks", json=body, headers=admin_headers))[:2] == (422, code)
    clock = client.post("/v1/test_clocks", json={"frozen_time": "2030-01-01T00:00:00Z"}, headers=admin_headers).json()
    same = client.post(
        f"/v1/test_clocks/{clock['id']}/advance", json={"frozen_time": "2030-01-01T00:00:00Z"}, headers=admin_headers
    )
    assert same.status_code == 200 and same.json()["frozen_time"] == "2030-01-01T00:00:00Z"
    deleted = client.delete(f"/v1/test_clocks/{clock['id']}", headers=admin_headers)
    assert (deleted.status_code, deleted.json()["deleted"]) == (200, True)
    gone = client.get(f"/v1/test_clocks/{clock['id']}", headers=admin_headers)
    assert _problem(gone) == (404, "test_clock_not_found", "id")
    assert _problem(client.delete("/v1/test_clocks/clk_x", headers=admin_headers)) == (
        404,
        "test_clock_not_found",
        "id",
    )
