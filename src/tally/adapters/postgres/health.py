"""Is the database usable: reachable, and migrated to the revision this code expects."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from tally.adapters.postgres.database import MIGRATIONS_DIR


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    reachable: bool
    current_revision: str | None
    head_revision: str
    error: str | None = None

    @property
    def ready(self) -> bool:
        return self.reachable and self.current_revision == self.head_revision


@cache
def head_revision() -> str:
    """The newest migration shipped with this code (read once per process)."""
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")
    return head


def schema_status(engine: Engine, statement_timeout_ms: int = 2000) -> SchemaStatus:
    head = head_revision()
    try:
        with engine.connect() as connection:
            connection.execute(text(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}"))
            current = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
    except Exception as error:  # any failure to reach or read the database means "not ready"
        return SchemaStatus(reachable=False, current_revision=None, head_revision=head, error=type(error).__name__)
    return SchemaStatus(reachable=True, current_revision=current, head_revision=head)
