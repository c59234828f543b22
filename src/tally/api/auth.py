"""Who is calling: `Authorization: Bearer tally_sk_…` resolved to a `Principal`, then scope checks.

Every /v1 request is authenticated by `AuthenticationMiddleware` before routing, so a request
without a valid key gets 401 before anything else is looked at (its body included). Endpoints then
declare what they need:

    @router.get("/things/{id}")
    def get_thing(id: str, principal: Principal = require_scope("read"), …): …

and query by `(principal.tenant_id, id)`, so another tenant's object is simply not found (404).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import Scope

from tally.api import context
from tally.app.api_keys import SCOPES, Principal, authenticate
from tally.bootstrap import Tally
from tally.core.rejections import Rejected

__all__ = ["Principal", "authenticate_scope", "require_scope"]

# Only for the OpenAPI document ("Authorize" in /docs); the middleware does the actual work.
_bearer = HTTPBearer(auto_error=False, bearerFormat="tally_sk_…", description="An API key: `Bearer tally_sk_…`")


async def authenticate_scope(scope: Scope, tally: Tally) -> Principal:
    """The caller's principal (resolved once per request). Raises `api_key_required`/`api_key_invalid`."""
    state = context.state(scope)
    known = state.get(context.PRINCIPAL)
    if isinstance(known, Principal):
        return known
    header = Headers(scope=scope).get("authorization")
    if header is None or not header.strip():
        raise Rejected.because("api_key_required", "send an API key: Authorization: Bearer tally_sk_…")
    scheme, _, secret = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Rejected.because("api_key_invalid", "the Authorization header must be: Bearer tally_sk_…")
    principal = await run_in_threadpool(authenticate, tally.engine, secret.strip())
    if principal is None:
        raise Rejected.because("api_key_invalid", "this API key is unknown or revoked")
    state[context.PRINCIPAL] = principal
    return principal


def require_scope(scope: str) -> Any:
    """A dependency answering the caller's `Principal` if its key has `scope` (`admin` has all)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def dependency(
        request: Request, _credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
    ) -> Principal:
        principal = await authenticate_scope(request.scope, context.get_tally(request))
        if not principal.allows(scope):
            raise Rejected.because(
                "api_key_scope_insufficient", f"this endpoint needs an API key with the {scope!r} scope"
            )
        return principal

    return Depends(dependency)
