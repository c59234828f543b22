"""Roll up: move committed batches from `rollup_queue` into the usage rollups, a bounded bite at a time.

One transaction claims the oldest queued batches (`FOR UPDATE SKIP LOCKED`, so several workers
share the queue), locks what it will write (its tenants shared, its customers' stripes exclusively,
in one global order), deletes the batches from the queue, and writes their effect:

- new events are merged into the rollups of every ready meter version of their type (time-weighted
  sums: their hours are recomputed, since an hour's integral depends on all its events' order);
- corrections make every ready version recompute the (customer, hour) cells of the corrected events
  from raw effective events.

Deleting the queue rows in the same transaction that writes the rollups is what keeps usage
queries exact: any snapshot sees each event once, in the rollups or in the queued tail.
Versions still backfilling are skipped: the backfill (which holds the tenant's lock exclusively)
reads every batch that is no longer queued.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Engine

from tally.adapters.postgres import meters as catalog
from tally.adapters.postgres import rollups
from tally.adapters.postgres.connections import run_in_transaction

BATCHES_PER_TRANSACTION_MAX = 100
EVENTS_PER_TRANSACTION_MAX = 50_000


@dataclass(frozen=True, slots=True)
class RollupOutcome:
    batches: int
    events: int
    recomputed_cells: int


def roll_up_events(
    engine: Engine,
    *,
    batches_max: int = BATCHES_PER_TRANSACTION_MAX,
    events_max: int = EVENTS_PER_TRANSACTION_MAX,
) -> RollupOutcome:
    """Roll up one bite of the queue; returns what it did (zero batches: the queue was empty)."""

    def work(connection: psycopg.Connection[Any]) -> RollupOutcome:
        claimed = rollups.claim_batches(connection, batches_max, events_max)
        if not claimed:
            return RollupOutcome(0, 0, 0)
        event_batches = [batch.batch_id for batch in claimed if batch.source != "correction"]
        correction_batches = [batch.batch_id for batch in claimed if batch.source == "correction"]
        event_cells = rollups.cells_of_event_batches(connection, event_batches) if event_batches else []
        corrected_cells = (
            rollups.cells_of_correction_batches(connection, correction_batches) if correction_batches else []
        )
        tenants = sorted({batch.tenant_id for batch in claimed})
        rollups.lock_tenants(connection, tenants, exclusive=False)
        rollups.lock_stripes(
            connection, {rollups.stripe_of(cell.tenant_id, cell.customer) for cell in [*event_cells, *corrected_cells]}
        )
        rollups.dequeue(connection, [batch.batch_id for batch in claimed])
        recomputed = 0
        for tenant_id in tenants:
            recomputed += _apply(
                connection,
                tenant_id,
                [batch.batch_id for batch in claimed if batch.tenant_id == tenant_id and batch.source != "correction"],
                [cell for cell in event_cells if cell.tenant_id == tenant_id],
                [cell for cell in corrected_cells if cell.tenant_id == tenant_id],
            )
        return RollupOutcome(len(claimed), sum(batch.event_count for batch in claimed), recomputed)

    return run_in_transaction(engine, work)


def _apply(
    connection: psycopg.Connection[Any],
    tenant_id: uuid.UUID,
    batch_ids: list[int],
    event_cells: list[rollups.TouchedCell],
    corrected_cells: list[rollups.TouchedCell],
) -> int:
    by_type: dict[str, list[rollups.Cell]] = defaultdict(list)
    corrected_by_type: dict[str, list[rollups.Cell]] = defaultdict(list)
    for cell in event_cells:
        by_type[cell.type].append(rollups.Cell(cell.customer, cell.hour))
    for cell in corrected_cells:
        corrected_by_type[cell.type].append(rollups.Cell(cell.customer, cell.hour))
    recomputed = 0
    versions = catalog.versions_for_types(connection, tenant_id, set(by_type) | set(corrected_by_type))
    for version in versions:
        if version.rollup_state != catalog.READY:
            continue
        meter = rollups.compile_meter(version.id, version.definition)
        event_type = version.definition.event_type
        cells = list(corrected_by_type.get(event_type, []))
        if event_type in by_type:
            if meter.time_weighted:
                cells.extend(by_type[event_type])
            else:
                rollups.merge_batches(connection, tenant_id, meter, batch_ids)
        if cells:
            rollups.recompute_cells(connection, tenant_id, meter, cells)
            recomputed += len(set(cells))
    return recomputed
