"""Health, readiness, metrics, docs, logs."""

from __future__ import annotations

import dataclasses
import json
import logging
import re

import pytest
from sqlalchemy import create_engine

from tally.adapters.logging import ConsoleFormatter, JsonFormatter, configure_logging
from tally.adapters.postgres import health
from tally.api import metrics as metrics_module
from tally.api.app import create_app
from tally.bootstrap import Tally
from tests.api.support import Headers, TestClient


def test_healthz_needs_no_database(tally: Tally) -> None:
    broken = dataclasses.replace(tally, engine=create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    response = TestClient(create_app(broken)).get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_when_ready(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert response.json()["schema_revision"] == response.json()["schema_revision_expected"]


def test_readyz_without_a_database(tally: Tally) -> None:
    broken = dataclasses.replace(
        tally, engine=create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    )
    response = TestClient(create_app(broken)).get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


def test_readyz_with_a_schema_behind_the_code(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "head_revision", lambda: "9999")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["schema_revision_expected"] == "9999"


def test_metrics_count_requests_by_route_template(tally: Tally, admin_headers: Headers) -> None:
    local = TestClient(create_app(tally))
    for _ in range(2):
        local.get("/v1/api_keys/key_01m7zf2x1re009w1hpsra27cee", headers=admin_headers)
    local.get("/healthz")
    text = local.get("/metrics").text
    assert 'tally_http_requests_total{method="GET",route="/v1/api_keys/{id}",status="404"} 2.0' in text
    assert 'tally_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert 'tally_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/healthz"}' in text
    # Raw paths never become labels.
    assert "key_01m7zf2x1re009w1hpsra27cee" not in text


def test_metrics_in_multiprocess_mode(tally: Tally, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert metrics_module.multiprocess_mode()
    response = TestClient(create_app(tally)).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")


def test_docs_are_served_from_local_assets(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert re.findall(r"https?://", page.text) == []
    for asset in re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', page.text):
        assert client.get(asset).status_code == 200, asset
    assert client.get("/openapi.json").json()["info"]["title"] == "Tally API"


def test_json_log_lines(tally: Tally, admin_headers: Headers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tally.api.access")
    TestClient(create_app(tally)).get("/v1/api_keys", headers={**admin_headers, "X-Request-Id": "log-test-1"})
    record = next(record for record in caplog.records if getattr(record, "request_id", None) == "log-test-1")
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "request" and line["level"] == "info" and line["logger"] == "tally.api.access"
    assert line["method"] == "GET" and line["route"] == "/v1/api_keys" and line["status"] == 200
    assert line["tenant_id"].startswith("ten_") and line["api_key_id"].startswith("key_")
    assert isinstance(line["duration_ms"], float)
    assert "status=200" in ConsoleFormatter().format(record)


def test_configure_logging_is_repeatable() -> None:
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        configure_logging("debug", "console")
        configure_logging("warning", "json")
        assert len(root.handlers) == 1 and root.level == logging.WARNING
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers[:] = before[0]
        root.setLevel(before[1])
        logging.getLogger("uvicorn.access").disabled = False
