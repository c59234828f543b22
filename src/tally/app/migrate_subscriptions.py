"""Migrate the subscriptions on one plan version to another, now or at the end of each one's term.

Plan versions in use never change; moving customers to a new version is this explicit operation.
Each subscription is migrated in its own transaction under its own lock (no transaction spans two
customers), as an items change to the new version (seats carry over by price code). A subscription
is skipped, with a reason, when it is not on the old version at the moment of its change, has
ended, or already has an items change scheduled after now — so running a migration twice migrates
nothing twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from tally.adapters.clock import Clock
from tally.adapters.postgres import subscriptions as store
from tally.adapters.postgres.connections import run_in_transaction
from tally.app._subscription_items import PlanChoice, resolve_plan_version
from tally.app._subscription_write import Context, RecordedEntry, When
from tally.app.change_subscription_items import ItemsChange, change_subscription_items
from tally.core.rejections import Rejected
from tally.core.subscriptions import ItemsChanged, Started, scheduled_changes

# Subscriptions one call migrates at most; run it again for the rest (it skips the migrated ones).
MIGRATION_SUBSCRIPTIONS_MAX = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    from_plan_version_id: uuid.UUID
    to: PlanChoice
    effective: When = When.PERIOD_END
    prorate: bool = True


@dataclass(frozen=True, slots=True)
class MigrationResult:
    migrated: tuple[uuid.UUID, ...]
    # (subscription, the code of the reason it was left alone)
    skipped: tuple[tuple[uuid.UUID, str], ...]


def plan_version_at(
    entries: tuple[RecordedEntry, ...], at: datetime, withdrawn: frozenset[int] = frozenset()
) -> uuid.UUID | None:
    """The plan version whose items are held at `at`: the last start or items change by then that
    is not withdrawn (`withdrawn`: the sequences of withdrawn facts)."""
    changes = [
        (recorded.entry.effective_at, recorded.sequence, recorded.plan_version_id)
        for recorded in entries
        if isinstance(recorded.entry, Started | ItemsChanged)
        and recorded.entry.effective_at <= at
        and recorded.sequence not in withdrawn
    ]
    return max(changes, key=lambda change: (change[0], change[1]))[2] if changes else None


def migrate_subscriptions(engine: Engine, clock: Clock, tenant_id: uuid.UUID, migration: Migration) -> MigrationResult:
    def gather(connection: store.Connection) -> list[uuid.UUID]:
        resolve_plan_version(connection, tenant_id, migration.to)
        source = store.plan_version(connection, tenant_id, migration.from_plan_version_id)
        if source is None:
            raise Rejected.because("plan_version_not_found", "no such plan version", "from_plan_version")
        return store.subscription_ids_on_plan_version(connection, tenant_id, source.id)[:MIGRATION_SUBSCRIPTIONS_MAX]

    candidates = run_in_transaction(engine, gather)
    migrated: list[uuid.UUID] = []
    skipped: list[tuple[uuid.UUID, str]] = []

    def guard(context: Context) -> None:
        at = context.resolve(migration.effective)
        timeline = context.timeline
        if any(
            isinstance(timeline.entries[position], ItemsChanged)
            for position in scheduled_changes(timeline, context.now)
        ):
            raise Rejected.because("items_change_already_scheduled", "an items change is already scheduled", "id")
        if plan_version_at(context.entries, at, timeline.history.withdrawn) != migration.from_plan_version_id:
            raise Rejected.because("subscription_not_on_plan_version", "not on the version migrated from", "id")

    for subscription_id in candidates:
        try:
            change_subscription_items(
                engine,
                clock,
                tenant_id,
                subscription_id,
                ItemsChange(plan=migration.to, effective=migration.effective, prorate=migration.prorate),
                guard=guard,
            )
        except Rejected as rejected:
            skipped.append((subscription_id, rejected.rejection.code))
        else:
            migrated.append(subscription_id)
    return MigrationResult(tuple(migrated), tuple(skipped))
