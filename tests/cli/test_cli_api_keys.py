"""`tally tenants`, `tally api-keys` and `tally serve` (with the server itself stubbed out)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from typer.testing import CliRunner

from tally.adapters.ids import API_KEY, TENANT, parse_id
from tally.app.api_keys import authenticate, get_api_key
from tally.app.audit import latest_audit_entries
from tally.app.tenants import find_tenants_by_name
from tally.bootstrap import Tally
from tally.cli import app as cli
from tally.cli import server

runner = CliRunner()


@pytest.fixture(autouse=True)
def _database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALLY_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "200")


def _run(*arguments: str) -> str:
    result = runner.invoke(cli, list(arguments))
    assert result.exit_code == 0, result.output
    return result.output


def test_create_makes_the_tenant_and_prints_the_key_once(tally: Tally) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    output = _run("api-keys", "create", "--tenant", name, "--name", "ci", "--scope", "read", "--scope", "ingest")
    secret = re.search(r"tally_sk_[A-Za-z0-9_-]+", output)
    assert secret is not None
    principal = authenticate(tally.engine, secret.group(0))
    assert principal is not None and principal.scopes == frozenset({"read", "ingest"})
    (tenant,) = find_tenants_by_name(tally.engine, name)
    assert principal.tenant_id == tenant.id
    actions = {entry.action: entry.actor for entry in latest_audit_entries(tally.engine, tenant.id)}
    assert actions == {"tally tenants create": "cli", "tally api-keys create": "cli"}

    # Again for the same tenant: no new tenant; the list shows both keys but never a secret.
    _run("api-keys", "create", "--tenant", name)
    assert len(find_tenants_by_name(tally.engine, name)) == 1
    listed = _run("api-keys", "list", "--tenant", name)
    assert listed.count("key_") == 2 and "tally_sk_" not in listed


def test_revoke(tally: Tally) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    output = _run("api-keys", "create", "--tenant", name)
    key_id = re.search(r"key_[0-9a-z]{26}", output)
    secret = re.search(r"tally_sk_[A-Za-z0-9_-]+", output)
    assert key_id is not None and secret is not None
    _run("api-keys", "revoke", key_id.group(0))
    assert authenticate(tally.engine, secret.group(0)) is None
    parsed = parse_id(API_KEY, key_id.group(0))
    assert parsed is not None
    (tenant,) = find_tenants_by_name(tally.engine, name)
    assert get_api_key(tally.engine, tenant.id, parsed).revoked_at is not None


def test_errors_are_one_line_and_exit_1() -> None:
    for arguments in (
        ["api-keys", "revoke", "key_nope"],
        ["api-keys", "revoke", "key_01m7zf2x1re009w1hpsra27cee"],
        ["api-keys", "create", "--tenant", "ten_01m7zf2x1re009w1hpsra27cee"],
        ["api-keys", "create", "--tenant", f"cli-{uuid.uuid4().hex[:8]}", "--scope", "write"],
    ):
        result = runner.invoke(cli, arguments)
        assert result.exit_code == 1, (arguments, result.output)
        assert re.search(r"[a-z_]+_(not_found|unknown)", result.output), result.output


def test_tenants(tally: Tally) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    created = _run("tenants", "create", name).strip()
    tenant_id = parse_id(TENANT, created)
    assert tenant_id is not None
    assert created in _run("tenants", "list")
    assert [tenant.id for tenant in find_tenants_by_name(tally.engine, name)] == [tenant_id]


def test_serve_runs_uvicorn_with_the_app_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **options: calls.append({"app": app, **options}))
    monkeypatch.setattr(server, "configure_logging", lambda *arguments: None)
    _run("serve", "--port", "9123", "--workers", "1")
    (call,) = calls
    assert call["app"] == "tally.api.asgi:app_factory" and call["factory"] is True
    assert (call["port"], call["workers"], call["access_log"]) == (9123, 1, False)


def test_demo_seed_on_an_empty_database(
    tally: Tally, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    loaded: list[Tally] = []
    monkeypatch.setattr(server, "any_tenant_exists", lambda engine: False)
    monkeypatch.setattr(server, "load_demo", loaded.append)
    server._seed_demo(tally, "http://127.0.0.1:8000")
    output = capsys.readouterr().out
    secret = re.search(r"tally_sk_[A-Za-z0-9_-]+", output)
    assert secret is not None and "http://127.0.0.1:8000/v1" in output
    principal = authenticate(tally.engine, secret.group(0))
    assert principal is not None and principal.scopes == frozenset({"admin"})
    assert loaded == [tally]
