"""Event partition maintenance, daily: create the coming months' partitions of `events`, drop the
ones past `TALLY_EVENT_RETENTION_DAYS` (see tally.app.maintain_event_partitions)."""

from __future__ import annotations

import logging
from datetime import datetime

from dbos import DBOS

from tally.worker.context import current_tally
from tally.worker.jobs import MAINTENANCE_QUEUE
from tally.worker.registry import define_schedule

logger = logging.getLogger(__name__)


# Creating what is missing and dropping what is expired is naturally safe to repeat.
@DBOS.step(name="tally.maintain_event_partitions.run", retries_allowed=True, interval_seconds=5, max_attempts=3)
def run_maintain_event_partitions() -> dict[str, list[str]]:
    """Returns the partitions created and dropped."""
    from tally.app.maintain_event_partitions import maintain_event_partitions

    tally = current_tally()
    done = maintain_event_partitions(tally.engine, tally.clock, tally.settings)
    if done.created or done.dropped:
        logger.info("event partitions created %s, dropped %s", list(done.created), list(done.dropped))
    return {"created": list(done.created), "dropped": list(done.dropped)}


@DBOS.workflow(name="tally.maintain_event_partitions")
def maintain_event_partitions(scheduled_at: datetime, context: object) -> dict[str, list[str]]:
    """The scheduled maintenance (`settings.event_partitions_cron`)."""
    return run_maintain_event_partitions()


define_schedule(
    "tally.maintain_event_partitions",
    maintain_event_partitions,
    cron_setting="event_partitions_cron",
    queue_name=MAINTENANCE_QUEUE,
)
