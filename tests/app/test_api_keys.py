"""API keys as a use case: secrets stored only as hashes, authentication, revocation, the cache."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from sqlalchemy import text

from tally.adapters.pagination import PageRequest
from tally.app import api_keys
from tally.app.api_keys import authenticate, create_api_key, list_api_keys, revoke_api_key
from tally.bootstrap import Tally
from tally.core.rejections import Rejected


def test_a_key_is_a_long_random_secret_stored_only_as_its_hash(tally: Tally, tenant_id: uuid.UUID) -> None:
    key, secret = create_api_key(tally.engine, tenant_id, "ci", ["read", "ingest"])
    assert secret.startswith("tally_sk_") and len(secret) >= len("tally_sk_") + 40
    assert key.secret_hint == secret[-4:]
    assert key.scopes == ("ingest", "read")
    with tally.engine.connect() as connection:
        row = connection.execute(text("SELECT * FROM api_keys WHERE id = :id"), {"id": key.id}).mappings().one()
    assert bytes(row["secret_hash"]) == hashlib.sha256(secret.encode()).digest()
    assert all(secret not in str(value) for value in row.values())
    _, other = create_api_key(tally.engine, tenant_id, "ci", ["read"])
    assert other != secret


def test_authenticate_answers_the_principal(tally: Tally, tenant_id: uuid.UUID) -> None:
    key, secret = create_api_key(tally.engine, tenant_id, "ci", ["read"])
    principal = authenticate(tally.engine, secret)
    assert principal is not None
    assert (principal.tenant_id, principal.api_key_id, principal.scopes) == (tenant_id, key.id, frozenset({"read"}))
    assert principal.allows("read") and not principal.allows("ingest") and not principal.allows("admin")
    assert principal.actor == f"api_key:{key.id}"
    assert authenticate(tally.engine, secret + "x") is None
    assert authenticate(tally.engine, "not-even-a-key") is None
    assert authenticate(tally.engine, "tally_sk_" + "a" * 500) is None


def test_admin_implies_every_scope(tally: Tally, tenant_id: uuid.UUID) -> None:
    _, secret = create_api_key(tally.engine, tenant_id, "root", ["admin"])
    principal = authenticate(tally.engine, secret)
    assert principal is not None
    assert all(principal.allows(scope) for scope in ("admin", "read", "ingest"))


def test_revoked_keys_fail_at_once_in_this_process(tally: Tally, tenant_id: uuid.UUID) -> None:
    key, secret = create_api_key(tally.engine, tenant_id, "ci", ["read"])
    assert authenticate(tally.engine, secret) is not None  # now cached
    revoked = revoke_api_key(tally.engine, tenant_id, key.id)
    assert revoked.revoked_at is not None
    assert authenticate(tally.engine, secret) is None
    assert revoke_api_key(tally.engine, tenant_id, key.id).revoked_at == revoked.revoked_at  # idempotent


def test_a_key_revoked_elsewhere_stops_working_within_the_cache_ttl(
    tally: Tally, tenant_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, secret = create_api_key(tally.engine, tenant_id, "ci", ["read"])
    now = [1000.0]
    monkeypatch.setattr(api_keys.time, "monotonic", lambda: now[0])
    assert authenticate(tally.engine, secret) is not None
    with tally.engine.begin() as connection:  # as another server would
        connection.execute(text("UPDATE api_keys SET revoked_at = now() WHERE id = :id"), {"id": key.id})
    assert authenticate(tally.engine, secret) is not None  # still cached
    now[0] += api_keys.AUTHENTICATION_CACHE_SECONDS + 0.01
    assert authenticate(tally.engine, secret) is None


def test_authentication_records_last_use(tally: Tally, tenant_id: uuid.UUID) -> None:
    key, secret = create_api_key(tally.engine, tenant_id, "ci", ["read"])
    assert key.last_used_at is None
    authenticate(tally.engine, secret)
    assert api_keys.get_api_key(tally.engine, tenant_id, key.id).last_used_at is not None


def test_another_tenants_key_is_not_found(tally: Tally, tenant_id: uuid.UUID) -> None:
    from tally.app.tenants import create_tenant

    other = create_tenant(tally.engine, "other")
    key, _ = create_api_key(tally.engine, other, "theirs", ["admin"])
    with pytest.raises(Rejected) as rejected:
        revoke_api_key(tally.engine, tenant_id, key.id)
    assert rejected.value.rejection.code == "api_key_not_found"
    with pytest.raises(Rejected):
        api_keys.get_api_key(tally.engine, tenant_id, key.id)
    assert list_api_keys(tally.engine, tenant_id, PageRequest()).items == []


@pytest.mark.parametrize(
    ("name", "scopes", "code"),
    [
        ("", ["read"], "api_key_name_length_must_be_1_to_200"),
        ("x" * 201, ["read"], "api_key_name_length_must_be_1_to_200"),
        ("ci", [], "api_key_scopes_required"),
        ("ci", ["read", "write"], "api_key_scope_unknown"),
    ],
)
def test_bad_input_is_rejected(tally: Tally, tenant_id: uuid.UUID, name: str, scopes: list[str], code: str) -> None:
    with pytest.raises(Rejected) as rejected:
        create_api_key(tally.engine, tenant_id, name, scopes)
    assert rejected.value.rejection.code == code


def test_keys_need_an_existing_tenant(tally: Tally) -> None:
    with pytest.raises(Rejected) as rejected:
        create_api_key(tally.engine, uuid.uuid4(), "ci", ["read"])
    assert rejected.value.rejection.code == "tenant_not_found"


def test_active_keys_per_tenant_are_limited(
    tally: Tally, tenant_id: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_keys, "ACTIVE_KEYS_PER_TENANT_MAX", 2)
    first, _ = create_api_key(tally.engine, tenant_id, "a", ["read"])
    create_api_key(tally.engine, tenant_id, "b", ["read"])
    with pytest.raises(Rejected) as rejected:
        create_api_key(tally.engine, tenant_id, "c", ["read"])
    assert rejected.value.rejection.code == "api_key_count_limit_reached"
    revoke_api_key(tally.engine, tenant_id, first.id)
    create_api_key(tally.engine, tenant_id, "c", ["read"])
