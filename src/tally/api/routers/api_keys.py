"""/v1/api_keys: create (the secret is in the answer, once), list, get, revoke. Admin keys only."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import Field, StringConstraints

from tally.adapters.ids import API_KEY, format_id, parse_id
from tally.adapters.pagination import PageRequest
from tally.api.auth import Principal, require_scope
from tally.api.context import get_tally, mark_response_secret
from tally.api.pagination import list_response, page_request
from tally.api.schemas import ApiModel, ListResponse, Metadata, Resource
from tally.app import api_keys
from tally.bootstrap import Tally
from tally.core.rejections import Rejected

ID_PREFIX = API_KEY

router = APIRouter(prefix="/api_keys", tags=["API keys"])

Scope = Literal["admin", "ingest", "read"]


class CreateApiKey(ApiModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=api_keys.NAME_LENGTH_MAX)]
    scopes: list[Scope] = Field(min_length=1, max_length=len(api_keys.SCOPES))
    metadata: Metadata = Field(default_factory=dict)


class ApiKeyResource(Resource):
    object: Literal["api_key"] = "api_key"
    name: str
    scopes: list[Scope]
    secret_hint: str = Field(description="The last four characters of the secret.")
    last_used_at: datetime | None
    revoked_at: datetime | None


class CreatedApiKey(ApiKeyResource):
    secret: str = Field(description="The API key. Shown in this answer only: store it now.")


def _resource(key: api_keys.ApiKey) -> ApiKeyResource:
    return ApiKeyResource(
        id=format_id(ID_PREFIX, key.id),
        created_at=key.created_at,
        metadata={str(name): str(value) for name, value in key.metadata.items()},
        name=key.name,
        scopes=list(key.scopes),  # type: ignore[arg-type]
        secret_hint=key.secret_hint,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
    )


def _key_id(text: str) -> uuid.UUID:
    parsed = parse_id(ID_PREFIX, text)
    if parsed is None:
        raise Rejected.because("api_key_not_found", "no such API key", "id")
    return parsed


@router.post("", status_code=201, response_model=CreatedApiKey, summary="Create an API key")
def create_api_key(
    body: CreateApiKey,
    request: Request,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> CreatedApiKey:
    """The answer holds the secret, the only time it is shown. With an Idempotency-Key, a retry
    gets 409 `idempotent_response_withheld` with the key's `object_id`, never the secret again."""
    mark_response_secret(request)
    key, secret = api_keys.create_api_key(
        tally.engine, principal.tenant_id, body.name, body.scopes, metadata=body.metadata
    )
    return CreatedApiKey(**_resource(key).model_dump(), secret=secret)


@router.get("", response_model=ListResponse[ApiKeyResource], summary="List API keys, newest first")
def list_api_keys(
    request: Request,
    page: PageRequest = Depends(page_request(ID_PREFIX)),
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> ListResponse[ApiKeyResource]:
    found = api_keys.list_api_keys(tally.engine, principal.tenant_id, page)
    return list_response(found.map(_resource), request)


@router.get("/{id}", response_model=ApiKeyResource, summary="Get an API key")
def get_api_key(
    id: str,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> ApiKeyResource:
    return _resource(api_keys.get_api_key(tally.engine, principal.tenant_id, _key_id(id)))


@router.post("/{id}/revoke", response_model=ApiKeyResource, summary="Revoke an API key for good")
def revoke_api_key(
    id: str,
    principal: Principal = require_scope("admin"),
    tally: Tally = Depends(get_tally),
) -> ApiKeyResource:
    return _resource(api_keys.revoke_api_key(tally.engine, principal.tenant_id, _key_id(id)))
