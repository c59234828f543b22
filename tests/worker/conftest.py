"""Fixtures for the job-runner tests.

Every test module that runs the runner gives it a system database of its own (named after this
process's test database, so xdist workers never share one): scheduled or queued workflows left over by
one module can then never be picked up by another module's runner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.worker.worker_testing import drop_database, fresh_database


@pytest.fixture
def system_database_factory(database_url: str) -> Iterator[Callable[[str], str]]:
    """Creates fresh system databases for a test and drops them afterwards."""
    created: list[str] = []

    def create(suffix: str) -> str:
        url = fresh_database(database_url, suffix)
        created.append(url)
        return url

    yield create
    for url in created:
        drop_database(url)


@pytest.fixture
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI tables are not folded into a narrow column, whatever terminal the tests run in. Through the
    environment, which the console reads at each use: setting its width instead would, once undone,
    leave it fixed at whatever it measured (80 columns without a terminal) for every later test."""
    monkeypatch.setenv("COLUMNS", "250")
