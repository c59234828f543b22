"""Shared fixtures: one real PostgreSQL database per test process, one fresh tenant per test.

Every row in tally belongs to a tenant, so a fresh tenant per test isolates tests without resetting
the database. The server is the embedded one (started on demand under `.tally/test-pgdata`) unless
`TALLY_TEST_DATABASE_URL` names an external PostgreSQL 15+.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tally.adapters.postgres import database
from tally.adapters.postgres.server import embedded_server_url, with_database
from tally.app.tenants import create_tenant
from tally.bootstrap import Tally, build
from tally.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _server_url() -> str:
    external = os.environ.get("TALLY_TEST_DATABASE_URL")
    if external:
        return database.libpq_url(external)
    return embedded_server_url(ROOT / ".tally" / "test-pgdata")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A freshly migrated database for this test process (one per xdist worker)."""
    server_url = _server_url()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"tally_test_{worker}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server_url, name)
    database.upgrade(url)
    yield url


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path_factory.mktemp("unused-pgdata"))


@pytest.fixture(scope="session")
def tally(settings: Settings) -> Iterator[Tally]:
    instance = build(settings, migrate=False)
    yield instance
    instance.close()


@pytest.fixture
def tenant_id(tally: Tally) -> uuid.UUID:
    return create_tenant(tally.engine, f"test-{uuid.uuid4().hex[:8]}")
