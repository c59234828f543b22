"""/v1/api_keys and the authentication and scope rules every endpoint follows."""

from __future__ import annotations

import uuid
from typing import Annotated

import pytest
from fastapi import APIRouter
from pydantic import BaseModel

from tally.api.auth import Principal, require_scope
from tally.bootstrap import Tally
from tests.api.conftest import MakeHeaders
from tests.api.support import Headers, TestClient, app_with, bearer


def test_create_shows_the_secret_once(client: TestClient, admin_headers: Headers) -> None:
    response = client.post(
        "/v1/api_keys",
        json={"name": "billing job", "scopes": ["read"], "metadata": {"team": "billing"}},
        headers=admin_headers,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["object"] == "api_key" and created["id"].startswith("key_")
    assert created["secret"].startswith("tally_sk_") and created["secret_hint"] == created["secret"][-4:]
    assert created["scopes"] == ["read"] and created["metadata"] == {"team": "billing"}
    assert created["revoked_at"] is None and created["created_at"]

    fetched = client.get(f"/v1/api_keys/{created['id']}", headers=admin_headers).json()
    assert "secret" not in fetched
    assert fetched == {key: value for key, value in created.items() if key != "secret"}
    listed = client.get("/v1/api_keys", headers=admin_headers).json()
    assert all("secret" not in item for item in listed["data"])
    # The new key works, with its own scopes.
    assert client.get("/v1/api_keys", headers=bearer(created["secret"])).json()["code"] == "api_key_scope_insufficient"


def test_revoked_keys_stop_working(client: TestClient, admin_headers: Headers) -> None:
    created = client.post("/v1/api_keys", json={"name": "temp", "scopes": ["admin"]}, headers=admin_headers).json()
    assert client.get("/v1/api_keys", headers=bearer(created["secret"])).status_code == 200
    revoked = client.post(f"/v1/api_keys/{created['id']}/revoke", headers=admin_headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    response = client.get("/v1/api_keys", headers=bearer(created["secret"]))
    assert response.status_code == 401 and response.json()["code"] == "api_key_invalid"
    again = client.post(f"/v1/api_keys/{created['id']}/revoke", headers=admin_headers)
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]


@pytest.mark.parametrize(
    "bad_id", ["nope", "key_", "acct_01m7zf2x1re009w1hpsra27cee", "key_01m7zf2x1re009w1hpsra27ce!"]
)
def test_unparsable_ids_are_not_found(client: TestClient, admin_headers: Headers, bad_id: str) -> None:
    for response in (
        client.get(f"/v1/api_keys/{bad_id}", headers=admin_headers),
        client.post(f"/v1/api_keys/{bad_id}/revoke", headers=admin_headers),
    ):
        assert response.status_code == 404 and response.json()["code"] == "api_key_not_found"


def test_create_validates_input(client: TestClient, admin_headers: Headers) -> None:
    cases = [
        ({"name": "x", "scopes": []}, "value_too_short", "scopes"),
        ({"name": "x", "scopes": ["write"]}, "value_not_allowed", "scopes[0]"),
        ({"name": "", "scopes": ["read"]}, "value_too_short", "name"),
        ({"scopes": ["read"]}, "field_required", "name"),
        ({"name": "x", "scopes": ["read"], "metadata": {"k": 1}}, "value_must_be_string", "metadata.k"),
        ({"name": "x", "scopes": ["read"], "tenant_id": "ten_x"}, "unknown_field", "tenant_id"),
    ]
    for body, code, field in cases:
        problem = client.post("/v1/api_keys", json=body, headers=admin_headers).json()
        assert (problem["code"], problem["field"]) == (code, field), body


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "api_key_required"),
        ("", "api_key_required"),
        ("Bearer", "api_key_invalid"),
        ("Basic dXNlcjpwYXNz", "api_key_invalid"),
        ("Bearer tally_sk_not-a-real-key", "api_key_invalid"),
        ("Bearer sk_live_123", "api_key_invalid"),
    ],
)
def test_missing_or_invalid_keys_get_401(client: TestClient, authorization: str | None, code: str) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get("/v1/api_keys", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == code
    assert response.headers["www-authenticate"] == "Bearer"


def test_authentication_comes_before_anything_else(client: TestClient) -> None:
    # Even a malformed body or an unknown route answers 401 to an anonymous caller.
    response = client.post("/v1/api_keys", content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.json()["code"] == "api_key_required"
    assert client.get("/v1/no_such_route").json()["code"] == "api_key_required"


class Answer(BaseModel):
    tenant_id: str
    scopes: list[str]


@pytest.fixture
def scoped_client(tally: Tally) -> TestClient:
    """An app with one endpoint per scope."""
    app = app_with(tally)
    router = APIRouter(prefix="/v1/test/scopes")

    def answer(principal: Principal) -> Answer:
        return Answer(tenant_id=str(principal.tenant_id), scopes=sorted(principal.scopes))

    @router.get("/read")
    def read(principal: Annotated[Principal, require_scope("read")]) -> Answer:
        return answer(principal)

    @router.post("/ingest")
    def ingest(principal: Annotated[Principal, require_scope("ingest")]) -> Answer:
        return answer(principal)

    @router.post("/admin")
    def admin(principal: Annotated[Principal, require_scope("admin")]) -> Answer:
        return answer(principal)

    app.include_router(router)
    return TestClient(app)


@pytest.mark.parametrize(
    ("scopes", "allowed"),
    [
        (["admin"], {"read", "ingest", "admin"}),
        (["read"], {"read"}),
        (["ingest"], {"ingest"}),
        (["read", "ingest"], {"read", "ingest"}),
    ],
)
def test_scopes(
    scoped_client: TestClient, make_headers: MakeHeaders, tenant_id: uuid.UUID, scopes: list[str], allowed: set[str]
) -> None:
    headers = make_headers(tenant_id, scopes)
    for scope in ("read", "ingest", "admin"):
        method = "GET" if scope == "read" else "POST"
        response = scoped_client.request(method, f"/v1/test/scopes/{scope}", headers=headers)
        if scope in allowed:
            assert response.status_code == 200, response.text
            assert response.json()["tenant_id"] == str(tenant_id)
        else:
            assert response.status_code == 403
            assert response.json()["code"] == "api_key_scope_insufficient"


def test_require_scope_knows_the_scopes() -> None:
    with pytest.raises(ValueError, match="unknown scope"):
        require_scope("write")


def test_openapi_declares_bearer_auth_and_problems(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert any(scheme.get("scheme", "").lower() == "bearer" for scheme in schemes.values())
    operation = document["paths"]["/v1/api_keys"]["post"]
    assert "application/problem+json" in operation["responses"]["422"]["content"]
    assert "HTTPValidationError" not in str(document)
