"""`tally db …`: schema migrations."""

from __future__ import annotations

import typer

from tally.adapters.postgres import database
from tally.cli._context import console, open_tally

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Migrate the database to the latest schema (also done at every start-up)."""
    with open_tally(migrate=False) as tally:
        database.upgrade(tally.database_url, revision)
        console.print(f"database at revision [bold]{database.current_revision(tally.database_url)}[/bold]")


@app.command("url")
def url() -> None:
    """Print the libpq URL of tally's database (starting the embedded server if needed)."""
    with open_tally(migrate=False) as tally:
        console.print(tally.database_url, highlight=False, soft_wrap=True)
