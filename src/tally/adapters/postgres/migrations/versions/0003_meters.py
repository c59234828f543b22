"""Meters and usage rollups: meters with immutable versions, per-hour rollups, distinct values.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- A meter: a stable code with labels edited in place. What it measures lives in its versions.
CREATE TABLE meters (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    code            text NOT NULL CHECK (code ~ '^[a-z][a-z0-9_]{0,62}$'),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description     text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    metadata        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    latest_version  integer NOT NULL CHECK (latest_version >= 1),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    UNIQUE (tenant_id, code)
);

-- One immutable definition per version (tally.core.metering.meters.MeterDefinition.document()).
-- `id` is the compact key rollups are kept under. `rollup_state` is 'backfilling' until the
-- backfill has built the version's rollups from the retained raw events; usage of a backfilling
-- version is computed from raw events.
CREATE TABLE meter_versions (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id         uuid NOT NULL,
    meter_id          uuid NOT NULL REFERENCES meters (id),
    version           integer NOT NULL CHECK (version >= 1),
    event_type        text NOT NULL,
    definition        jsonb NOT NULL,
    created_at        timestamptz NOT NULL,
    rollup_state      text NOT NULL CHECK (rollup_state IN ('backfilling', 'ready')),
    rollups_ready_at  timestamptz,
    UNIQUE (meter_id, version)
);
CREATE INDEX meter_versions_tenant_type ON meter_versions (tenant_id, event_type);

-- History is never reinterpreted: a version's definition can never change, nor can it be deleted.
CREATE FUNCTION meter_versions_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'meter versions are never deleted' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.tenant_id <> OLD.tenant_id OR NEW.meter_id <> OLD.meter_id OR NEW.version <> OLD.version
       OR NEW.event_type <> OLD.event_type OR NEW.definition <> OLD.definition
       OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'meter versions are immutable: make a new version' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER meter_versions_are_immutable BEFORE UPDATE OR DELETE ON meter_versions
    FOR EACH ROW EXECUTE FUNCTION meter_versions_are_immutable();

-- Per (tenant, meter version, customer, UTC hour, series) the mergeable summary of the effective
-- events of batches no longer in rollup_queue. A series is the values of all the meter's group_by
-- keys (`group_values`, NULL for a missing one); `group_key` is its SHA-256, so long values fit the
-- index. Which columns are filled depends on the aggregation (see tally.adapters.postgres.rollups).
-- Derived data: a row can always be recomputed from raw events (`tally usage verify` checks it).
CREATE TABLE usage_rollups (
    tenant_id         uuid NOT NULL,
    meter_version_id  bigint NOT NULL,
    customer          text NOT NULL,
    hour              timestamptz NOT NULL,
    group_key         bytea NOT NULL,
    group_values      text[] NOT NULL,
    event_count       bigint NOT NULL,
    skipped_count     bigint NOT NULL,
    value_sum         numeric,
    value_min         numeric,
    value_max         numeric,
    first_at          timestamptz,
    first_event_id    text,
    first_value       numeric,
    last_at           timestamptz,
    last_event_id     text,
    last_value        numeric,
    integral          numeric,
    PRIMARY KEY (tenant_id, meter_version_id, customer, hour, group_key)
);

-- unique_count: the distinct values seen per (customer, hour, series); `value_key` is the SHA-256 of
-- the value's kind and canonical text (numbers by value).
CREATE TABLE usage_rollup_values (
    tenant_id         uuid NOT NULL,
    meter_version_id  bigint NOT NULL,
    customer          text NOT NULL,
    hour              timestamptz NOT NULL,
    group_key         bytea NOT NULL,
    group_values      text[] NOT NULL,
    value_key         bytea NOT NULL,
    PRIMARY KEY (tenant_id, meter_version_id, customer, hour, group_key, value_key)
);

-- The rollup worker and usage queries find the corrections of a queued batch.
CREATE INDEX event_corrections_batch ON event_corrections (batch_id);

-- rollup_queue is a hot queue (a row per batch, deleted within ~200 ms): vacuum and analyze it by row
-- count, not by fraction, so dead rows do not pile up and the planner knows it is small.
ALTER TABLE rollup_queue SET (
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 1000
);
"""

DOWNGRADE = """
ALTER TABLE rollup_queue RESET (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
    autovacuum_analyze_scale_factor, autovacuum_analyze_threshold
);
DROP INDEX event_corrections_batch;
DROP TABLE usage_rollup_values;
DROP TABLE usage_rollups;
DROP TRIGGER meter_versions_are_immutable ON meter_versions;
DROP FUNCTION meter_versions_are_immutable();
DROP TABLE meter_versions;
DROP TABLE meters;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
