"""An ASGI factory for servers that import the app by name (`tally serve --workers N`, or
`uvicorn tally.api.asgi:app_factory --factory`). Each process builds its own `Tally` from settings.

It does not migrate: the process that starts the workers does (`tally serve`), or run
`tally db upgrade` first. `/readyz` answers 503 until the schema is at head.
"""

from __future__ import annotations

from fastapi import FastAPI

from tally.adapters.gc_tuning import tune_for_bulk_work
from tally.adapters.logging import configure_logging
from tally.api.app import create_app
from tally.bootstrap import build
from tally.settings import Settings


def app_factory() -> FastAPI:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(build(settings, migrate=False), close_tally_on_shutdown=True)
    tune_for_bulk_work()  # a serving process: ingest requests make many short-lived objects
    return app
