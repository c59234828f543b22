"""Metering storage: raw usage events (time-partitioned), the forever dedup registry, ingest batches,
the rollup queue, corrections, late-event flags and usage closures.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Number of hash partitions of the dedup registry. Changing it later means a data migration.
EVENT_ID_PARTITIONS = 8

UPGRADE = r"""
-- One row per accepted ingest request (or import chunk). `batch_id` orders batches by arrival.
CREATE TABLE ingest_batches (
    batch_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    received_at  timestamptz NOT NULL,
    source       text NOT NULL CHECK (source IN ('api', 'import', 'correction')),
    event_count  integer NOT NULL CHECK (event_count >= 0)
);
CREATE INDEX ingest_batches_tenant ON ingest_batches (tenant_id, batch_id);

-- The dedup registry: an event id is unique per tenant FOREVER, so this table is never pruned with
-- the raw events. `content_hash` (sha256 of the canonical event, first 16 bytes) tells an identical
-- resend (duplicate) from a different event reusing the id (conflict).
CREATE TABLE event_ids (
    tenant_id     uuid NOT NULL,
    event_id      text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 255),
    content_hash  bytea NOT NULL,
    "timestamp"   timestamptz NOT NULL,
    batch_id      bigint NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
) PARTITION BY HASH (event_id);

-- Raw events, partitioned by month of the usage time. Narrow on purpose: everything a meter needs is
-- in `properties`. Retention drops whole partitions; the dedup registry above is kept.
CREATE TABLE events (
    tenant_id    uuid NOT NULL,
    event_id     text NOT NULL,
    customer     text NOT NULL CHECK (length(customer) BETWEEN 1 AND 255),
    type         text NOT NULL CHECK (length(type) BETWEEN 1 AND 255),
    "timestamp"  timestamptz NOT NULL,
    properties   jsonb NOT NULL CHECK (jsonb_typeof(properties) = 'object'),
    received_at  timestamptz NOT NULL,
    batch_id     bigint NOT NULL
) PARTITION BY RANGE ("timestamp");
-- The read path of raw events: one customer's events of some types over a time range.
CREATE INDEX events_customer_type_time ON events (tenant_id, customer, type, "timestamp");
-- The rollup worker and the not-yet-rolled-up tail of usage queries find events by batch.
CREATE INDEX events_batch ON events (batch_id);
-- Anything outside the pre-created monthly partitions lands here (it should stay empty: the ingest
-- horizon keeps timestamps within the partitions the maintenance job creates).
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- Committed batches whose events are not yet in the rollups. The rollup worker deletes a batch's
-- row in the same transaction that adds its events to the rollups, so any snapshot sees each
-- event exactly once: either in the rollups, or in a queued batch (the raw tail of a query).
CREATE TABLE rollup_queue (
    batch_id   bigint PRIMARY KEY,
    tenant_id  uuid NOT NULL,
    queued_at  timestamptz NOT NULL
);

-- Corrections are new facts: an event is never rewritten. `retract` removes an event from usage;
-- `amend` replaces its properties (the latest amendment wins). Rollups of the affected hour are
-- recomputed from raw events.
CREATE TABLE event_corrections (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    event_id     text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('retract', 'amend')),
    properties   jsonb CHECK (properties IS NULL OR jsonb_typeof(properties) = 'object'),
    reason       text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    batch_id     bigint NOT NULL,
    CHECK ((kind = 'amend') = (properties IS NOT NULL))
);
CREATE INDEX event_corrections_event ON event_corrections (tenant_id, event_id, created_at);

-- How far each customer's usage has been invoiced. Written by invoicing; read by ingest to flag
-- events (and corrections) that land in an already-invoiced period.
CREATE TABLE usage_closures (
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    customer       text NOT NULL,
    closed_through timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, customer)
);

-- Usage that arrived (or changed) after its period was invoiced. Invoicing amends from these and
-- marks them resolved; nothing is dropped silently.
CREATE TABLE late_usage (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id),
    customer       text NOT NULL,
    event_id       text NOT NULL,
    "timestamp"    timestamptz NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('late_event', 'retract', 'amend')),
    flagged_at     timestamptz NOT NULL,
    resolved_at    timestamptz,
    resolution     text
);
CREATE INDEX late_usage_open ON late_usage (tenant_id, customer, "timestamp") WHERE resolved_at IS NULL;
"""

DOWNGRADE = """
DROP TABLE late_usage;
DROP TABLE usage_closures;
DROP TABLE event_corrections;
DROP TABLE rollup_queue;
DROP TABLE events;
DROP TABLE event_ids;
DROP TABLE ingest_batches;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    for remainder in range(EVENT_ID_PARTITIONS):
        op.execute(
            f"CREATE TABLE event_ids_{remainder} PARTITION OF event_ids "
            f"FOR VALUES WITH (MODULUS {EVENT_ID_PARTITIONS}, REMAINDER {remainder})"
        )


def downgrade() -> None:
    op.execute(DOWNGRADE)
