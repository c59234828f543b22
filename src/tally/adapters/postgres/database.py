"""The database handle: URL resolution, the SQLAlchemy engine, and migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine

# Registers the bulk array dumpers for every connection made from here on (before the first one).
from tally.adapters.postgres import arrays as _arrays  # noqa: F401
from tally.adapters.postgres.server import (
    embedded_server_url,
    ensure_database,
    libpq_url,
    sqlalchemy_url,
    with_database,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def resolve_database_url(database_url: str | None, data_dir: Path, database_name: str) -> str:
    """The libpq URL of tally's database: the configured one, or one on the embedded server."""
    if database_url:
        return libpq_url(database_url)
    maintenance_url = embedded_server_url(data_dir)
    ensure_database(maintenance_url, database_name)
    return with_database(maintenance_url, database_name)


def make_engine(url: str, pool_size: int = 10) -> Engine:
    return create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # No ping before each checkout (a round trip per unit of work): a connection found dead is
        # invalidated when it fails (see connections.psycopg_transaction), and the request retried
        # by its caller. Connections are recycled hourly so none outlives a failover for long.
        pool_pre_ping=False,
        pool_recycle=3600,
    )


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`. Safe to run from several processes at once (advisory lock)."""
    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
