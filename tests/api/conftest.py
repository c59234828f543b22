"""Fixtures for API tests: one app and client per test process, API keys per test tenant."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence

import pytest
from fastapi import FastAPI

from tally.api.app import create_app
from tally.app.api_keys import create_api_key
from tally.bootstrap import Tally
from tests.api.support import Headers, TestClient, bearer

MakeHeaders = Callable[..., Headers]


@pytest.fixture(scope="session")
def api_app(tally: Tally) -> FastAPI:
    return create_app(tally)


@pytest.fixture(scope="session")
def client(api_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(api_app) as test_client:
        yield test_client


@pytest.fixture
def make_headers(tally: Tally) -> MakeHeaders:
    """`make_headers(tenant_id, scopes=("admin",))`: Authorization headers of a new key."""

    def make(tenant_id: uuid.UUID, scopes: Sequence[str] = ("admin",)) -> Headers:
        _, secret = create_api_key(tally.engine, tenant_id, "test", scopes)
        return bearer(secret)

    return make


@pytest.fixture
def admin_headers(make_headers: MakeHeaders, tenant_id: uuid.UUID) -> Headers:
    return make_headers(tenant_id)
