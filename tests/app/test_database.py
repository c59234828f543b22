from alembic.script import ScriptDirectory
from sqlalchemy import text

from tally.adapters.postgres import database
from tally.bootstrap import Tally


def test_migrations_are_at_head(tally: Tally) -> None:
    head = ScriptDirectory.from_config(database.alembic_config(tally.database_url)).get_current_head()
    assert head is not None
    assert database.current_revision(tally.database_url) == head


def test_server_is_postgresql_15_or_newer(tally: Tally) -> None:
    with tally.engine.connect() as connection:
        version = connection.execute(text("SHOW server_version_num")).scalar_one()
    assert int(version) >= 150000
