"""Keep the monthly partitions of `events` ready, and drop the ones past retention.

Partitions exist from a month before the ingest horizon to three months ahead, so every event the
ingest window accepts lands in its month's partition (the default partition only catches what a
later-widened horizon lets in before this runs). With `event_retention_days` set, a partition whose
every event is older than the retention is detached and dropped, a whole month at once; the dedup
registry (`event_ids`) is never pruned, so an id stays taken forever. Runs at start-up and daily.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import events as store
from tally.settings import Settings

__all__ = ["PartitionMaintenance", "maintain_event_partitions"]

PARTITIONS_AHEAD = timedelta(days=92)  # three months
PARTITIONS_BEHIND_HORIZON = timedelta(days=31)  # one month


@dataclass(frozen=True, slots=True)
class PartitionMaintenance:
    created: tuple[str, ...]
    dropped: tuple[str, ...]


def maintain_event_partitions(engine: Engine, clock: Clock, settings: Settings) -> PartitionMaintenance:
    """Create the missing partitions of [now − horizon − 1 month, now + 3 months); drop those past
    retention. Safe to repeat and to run from several processes at once."""
    now = clock.now()
    horizon = timedelta(days=settings.ingest_horizon_days)
    start = now - horizon - PARTITIONS_BEHIND_HORIZON
    cutoff = None
    if settings.event_retention_days is not None:
        retention = timedelta(days=settings.event_retention_days)
        if retention < horizon:
            raise ValueError(
                "TALLY_EVENT_RETENTION_DAYS must be at least TALLY_INGEST_HORIZON_DAYS: events would be accepted "
                "and then dropped"
            )
        cutoff = now - retention
        start = max(start, cutoff)
    created = store.ensure_event_partitions(engine, start, now + PARTITIONS_AHEAD)
    dropped = store.drop_event_partitions_before(engine, cutoff) if cutoff is not None else []
    return PartitionMaintenance(created=tuple(created), dropped=tuple(dropped))
