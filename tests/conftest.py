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
from hypothesis import HealthCheck, settings
from psycopg import sql

from tally.adapters.postgres import database
from tally.adapters.postgres.server import embedded_server_url, with_database
from tally.app.tenants import create_tenant
from tally.bootstrap import Tally, build
from tally.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

# The CLI's consoles read COLUMNS when they are made, and a width found there stays fixed for the
# life of the process; without it they read COLUMNS at each use, which the CLI tests set per command.
# pytest-xdist starts its workers with COLUMNS=80, which would otherwise cut every table of every
# CLI test short (ids included). This module is imported before any test module imports the CLI.
os.environ.pop("COLUMNS", None)

# Tests finalize drafts by hand unless they turn automatic finalization on themselves
# (tests/app/test_finalize_due_invoices.py): its advance hook is process-wide, and the tests written
# before it read drafts after advancing clocks months past their grace period. Set in the environment
# so that every build in this process, the CLI's included, reads it.
os.environ.setdefault("TALLY_INVOICE_AUTO_FINALIZE", "false")

# The machines are shared and noisy, and a fresh clone pays Hypothesis's one-off warm-up (its text
# strategy builds a character table on first use): slow generation or a slow example says nothing
# about correctness, so neither fails a test. Every property still runs its examples in full.
settings.register_profile("tally", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("tally")


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
    # The pid keeps concurrent test runs on one server (and their xdist workers) apart.
    name = f"tally_test_{worker}_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        _drop_abandoned_databases(connection)
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server_url, name)
    database.upgrade(url)
    yield url
    with psycopg.connect(server_url, autocommit=True) as connection:
        for database_name in (name, f"{name}_dbos"):
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database_name)))


def _drop_abandoned_databases(connection: psycopg.Connection) -> None:
    """Test databases whose pytest process is gone (killed runs) are dropped."""
    names = [row[0] for row in connection.execute("SELECT datname FROM pg_database WHERE datname LIKE 'tally_test_%'")]
    for name in names:
        pid = name.removesuffix("_dbos").rsplit("_", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


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
