"""API keys: create (the secret is shown once), authenticate, revoke, list.

A key is `tally_sk_` followed by 43 URL-safe characters (256 bits from `secrets`). Only its sha256
is stored, with the last four characters as a hint so people can tell keys apart. A key belongs to
one tenant and carries scopes: `admin` (everything), `read` (read endpoints), `ingest` (event
ingestion only).

`authenticate` keeps an in-process cache of answers for `AUTHENTICATION_CACHE_SECONDS`, so a busy
key costs one database read per process every few seconds. Revoking through this process clears the
entry at once; a key revoked elsewhere (another process or server) stops working here within
`AUTHENTICATION_CACHE_SECONDS`.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, RowMapping

from tally.adapters.ids import new_id
from tally.adapters.pagination import Page, PageRequest
from tally.adapters.postgres import api_keys as rows
from tally.adapters.postgres import tenants as tenant_rows
from tally.core.rejections import Rejected

SCOPES = frozenset({"admin", "ingest", "read"})
SECRET_PREFIX = "tally_sk_"  # noqa: S105 - a prefix, not a secret
SECRET_RANDOM_BYTES = 32
SECRET_LENGTH_MAX = 200
NAME_LENGTH_MAX = 200
ACTIVE_KEYS_PER_TENANT_MAX = 1000
AUTHENTICATION_CACHE_SECONDS = 5.0
AUTHENTICATION_CACHE_ENTRIES_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant every query is scoped to, and what the key may do."""

    tenant_id: uuid.UUID
    api_key_id: uuid.UUID
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        """`admin` implies every other scope."""
        return scope in self.scopes or "admin" in self.scopes

    @property
    def actor(self) -> str:
        return f"api_key:{self.api_key_id}"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    scopes: tuple[str, ...]
    secret_hint: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def create_api_key(
    engine: Engine,
    tenant_id: uuid.UUID,
    name: str,
    scopes: Iterable[str],
    *,
    metadata: Mapping[str, Any] | None = None,
) -> tuple[ApiKey, str]:
    """A new key for the tenant, and its secret. The secret is not stored: show it once."""
    scope_set = frozenset(scopes)
    if not 1 <= len(name) <= NAME_LENGTH_MAX:
        raise Rejected.because(
            "api_key_name_length_must_be_1_to_200", "an API key name has 1 to 200 characters", "name"
        )
    if not scope_set:
        raise Rejected.because("api_key_scopes_required", "an API key needs at least one scope", "scopes")
    unknown = sorted(scope_set - SCOPES)
    if unknown:
        raise Rejected.because(
            "api_key_scope_unknown",
            f"unknown scope {unknown[0]!r}; scopes are {', '.join(sorted(SCOPES))}",
            "scopes",
        )
    secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_RANDOM_BYTES)
    with engine.begin() as connection:
        # Locking the tenant row serializes key creation per tenant, so the limit below holds.
        if tenant_rows.get(connection, tenant_id, for_update=True) is None:
            raise Rejected.because("tenant_not_found", "no such tenant")
        if rows.count_active(connection, tenant_id) >= ACTIVE_KEYS_PER_TENANT_MAX:
            raise Rejected.because(
                "api_key_count_limit_reached",
                f"a tenant has at most {ACTIVE_KEYS_PER_TENANT_MAX} active API keys; revoke unused ones",
            )
        row = rows.insert_api_key(
            connection,
            api_key_id=new_id(),
            tenant_id=tenant_id,
            name=name,
            secret_hash=hash_secret(secret),
            secret_hint=secret[-4:],
            scopes=sorted(scope_set),
            metadata=dict(metadata or {}),
        )
    return _api_key(row), secret


def get_api_key(engine: Engine, tenant_id: uuid.UUID, api_key_id: uuid.UUID) -> ApiKey:
    with engine.connect() as connection:
        row = rows.get(connection, tenant_id, api_key_id)
    if row is None:
        raise Rejected.because("api_key_not_found", "no such API key", "id")
    return _api_key(row)


def tenant_of_api_key(engine: Engine, api_key_id: uuid.UUID) -> uuid.UUID | None:
    """The tenant a key belongs to (operators' tools only; the API always knows its tenant)."""
    with engine.connect() as connection:
        return rows.tenant_of(connection, api_key_id)


def list_api_keys(engine: Engine, tenant_id: uuid.UUID, page: PageRequest) -> Page[ApiKey]:
    """The tenant's keys, revoked ones included, newest first."""
    with engine.connect() as connection:
        return rows.list_page(connection, tenant_id, page).map(_api_key)


def revoke_api_key(engine: Engine, tenant_id: uuid.UUID, api_key_id: uuid.UUID) -> ApiKey:
    """Revoke a key for good. Revoking it again changes nothing and answers the same key."""
    with engine.begin() as connection:
        row = rows.revoke(connection, tenant_id, api_key_id)
    if row is None:
        raise Rejected.because("api_key_not_found", "no such API key", "id")
    _cache.forget_key(api_key_id)
    return _api_key(row)


def authenticate(engine: Engine, secret: str) -> Principal | None:
    """The principal a secret stands for; None for an unknown or revoked key."""
    if not secret.startswith(SECRET_PREFIX) or len(secret) > SECRET_LENGTH_MAX:
        return None
    secret_hash = hash_secret(secret)
    cache_key = (id(engine), secret_hash)
    found, principal = _cache.get(cache_key)
    if found:
        return principal
    with engine.begin() as connection:
        row = rows.find_by_secret_hash(connection, secret_hash)
        if row is not None and row["revoked_at"] is None:
            rows.touch_last_used(connection, row["id"])
    if row is None or row["revoked_at"] is not None:
        principal = None
    else:
        principal = Principal(tenant_id=row["tenant_id"], api_key_id=row["id"], scopes=frozenset(row["scopes"]))
    _cache.put(cache_key, principal)
    return principal


def clear_authentication_cache() -> None:
    _cache.clear()


class _AuthenticationCache:
    """Answers of `authenticate` for a few seconds, unknown secrets included (bounded)."""

    def __init__(self, ttl_seconds: float, entries_max: int) -> None:
        self._ttl_seconds = ttl_seconds
        self._entries_max = entries_max
        self._entries: dict[tuple[int, bytes], tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[int, bytes]) -> tuple[bool, Principal | None]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False, None
            expires_at, principal = entry
            if expires_at <= time.monotonic():
                del self._entries[key]
                return False, None
            return True, principal

    def put(self, key: tuple[int, bytes], principal: Principal | None) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._entries) >= self._entries_max:
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                if len(self._entries) >= self._entries_max:
                    self._entries.clear()
            self._entries[key] = (now + self._ttl_seconds, principal)

    def forget_key(self, api_key_id: uuid.UUID) -> None:
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if v[1] is None or v[1].api_key_id != api_key_id}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_cache = _AuthenticationCache(AUTHENTICATION_CACHE_SECONDS, AUTHENTICATION_CACHE_ENTRIES_MAX)


def _api_key(row: RowMapping) -> ApiKey:
    return ApiKey(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        scopes=tuple(sorted(row["scopes"])),
        secret_hint=row["secret_hint"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
        metadata=dict(row["metadata"] or {}),
    )
