"""The composition root: builds everything from settings. Nothing happens at import time."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import Engine

from tally.adapters.clock import Clock, SystemClock
from tally.adapters.postgres import database
from tally.settings import Settings


@dataclass
class Tally:
    """What the entrypoints (API, CLI, worker) share: settings, the database, the clock."""

    settings: Settings
    database_url: str
    engine: Engine
    clock: Clock = field(default_factory=SystemClock)

    def close(self) -> None:
        self.engine.dispose()


def build(settings: Settings | None = None, *, migrate: bool = True, clock: Clock | None = None) -> Tally:
    """Resolve the database (starting the embedded server if needed), migrate, and wire the parts."""
    settings = settings or Settings()
    url = database.resolve_database_url(settings.database_url, settings.data_dir, settings.database_name)
    if migrate:
        database.upgrade(url)
    engine = database.make_engine(url, pool_size=settings.database_pool_size)
    tally = Tally(settings=settings, database_url=url, engine=engine, clock=clock or SystemClock())
    # What a test clock advance makes happen, as if the time had passed.
    from tally.app.evaluate_billing_thresholds import register_threshold_hook
    from tally.app.finalize_due_invoices import grace_period_of_hours, register_finalization_hook
    from tally.app.refresh_subscriptions import register_subscription_hooks
    from tally.app.run_billing import register_billing_hooks

    register_subscription_hooks()
    register_billing_hooks()  # after subscriptions: billing reads them brought up to date
    register_threshold_hook()  # after billing: what is accrued is net of everything billed
    if settings.invoice_auto_finalize:
        # Last: what it finalizes is the draft billed through the new time, credit expiries included.
        register_finalization_hook(grace_period_of_hours(settings.invoice_grace_period_hours))
    if migrate:
        # The months of events the ingest window accepts get their partitions before any arrive.
        from psycopg.errors import LockNotAvailable

        from tally.app.maintain_event_partitions import maintain_event_partitions

        try:
            maintain_event_partitions(engine, tally.clock, settings)
        except LockNotAvailable:
            logging.getLogger(__name__).warning("events table busy: partitions left to the daily job")
    return tally
