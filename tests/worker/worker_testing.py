"""Helpers shared by the job-runner tests (fixtures are in conftest)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from tally.adapters.postgres.server import with_database
from tally.settings import Settings

# A cron that does not fire while tests run (yearly, at new year).
CRON_NEVER = "0 0 1 1 *"
WAIT_SECONDS_MAX = 30.0


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def fresh_database(database_url: str, suffix: str) -> str:
    """Drop and create a database for `suffix` beside this process's test database; returns its URL.

    Named `tally_test_<suffix>_<worker>_<pid>` after `tally_test_<worker>_<pid>`, so the session's
    clean-up of databases left by killed test runs also finds it.
    """
    if not suffix.isidentifier() or len(suffix) > 20:
        raise ValueError(f"bad database suffix {suffix!r}")
    base = database_name(database_url)
    prefix = "tally_test_"
    name = f"{prefix}{suffix}_{base.removeprefix(prefix)}" if base.startswith(prefix) else f"{base}_{suffix}"
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(database_url, name)


def drop_database(url: str) -> None:
    name = database_name(url)
    maintenance = with_database(url, "postgres")
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def worker_settings(settings: Settings, **overrides: Any) -> Settings:
    """The session's settings, with crons that stay quiet unless a test says otherwise."""
    values: dict[str, Any] = {
        "integrity_check_cron": CRON_NEVER,
        "idempotency_purge_cron": CRON_NEVER,
        "worker_executor_id": f"pytest-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}",
        "worker_shutdown_grace_seconds": 0,
        "log_level": "warning",
    }
    values.update(overrides)
    return settings.model_copy(update=values)


def wait_until(
    condition: Callable[[], bool], what: str, *, timeout: float = WAIT_SECONDS_MAX, interval: float = 0.05
) -> None:
    """Poll until `condition()` holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
