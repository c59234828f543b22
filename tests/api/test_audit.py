"""Every successful mutating request leaves one audit-log entry; nothing else does."""

from __future__ import annotations

import uuid

from tally.app.api_keys import authenticate
from tally.app.audit import latest_audit_entries
from tally.bootstrap import Tally
from tests.api.support import Headers, TestClient


def test_successful_mutations_are_audited(
    client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    principal = authenticate(tally.engine, admin_headers["Authorization"].removeprefix("Bearer "))
    assert principal is not None
    created = client.post("/v1/api_keys", json={"name": "ci", "scopes": ["read"]}, headers=admin_headers)
    revoked = client.post(f"/v1/api_keys/{created.json()['id']}/revoke", headers=admin_headers)
    entries = latest_audit_entries(tally.engine, tenant_id)
    assert [entry.action for entry in entries] == ["POST /v1/api_keys/{id}/revoke", "POST /v1/api_keys"]
    revoke_entry, create_entry = entries
    assert create_entry.actor == f"api_key:{principal.api_key_id}"
    assert (create_entry.object_type, create_entry.object_id) == ("api_key", created.json()["id"])
    assert create_entry.request_id == created.headers["x-request-id"]
    assert create_entry.details == {"status": 201}
    assert revoke_entry.object_id == created.json()["id"]
    assert revoke_entry.request_id == revoked.headers["x-request-id"]


def test_reads_failures_and_replays_are_not_audited(
    client: TestClient, admin_headers: Headers, tally: Tally, tenant_id: uuid.UUID
) -> None:
    client.get("/v1/api_keys", headers=admin_headers)
    client.post("/v1/api_keys", json={"name": "", "scopes": ["read"]}, headers=admin_headers)
    client.post("/v1/api_keys/key_01m7zf2x1re009w1hpsra27cee/revoke", headers=admin_headers)
    assert latest_audit_entries(tally.engine, tenant_id) == []
    headers = {**admin_headers, "Idempotency-Key": "once"}
    client.post("/v1/api_keys", json={"name": "ci", "scopes": ["read"]}, headers=headers)
    replay = client.post("/v1/api_keys", json={"name": "ci", "scopes": ["read"]}, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert len(latest_audit_entries(tally.engine, tenant_id)) == 1
