"""Daily usage rollups: the hourly summaries combined per UTC day, so a month is ~30 rows per series.

Existing meter versions go back to `backfilling`: the worker rebuilds their hourly and daily rollups
from raw events (usage is computed from raw events meanwhile, so answers stay exact).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- The same summaries as usage_rollups per UTC day. A day row is always the combination of that
-- day's hourly rows (tally.adapters.postgres.rollups.refresh_days).
CREATE TABLE usage_rollups_daily (
    tenant_id         uuid NOT NULL,
    meter_version_id  bigint NOT NULL,
    customer          text NOT NULL,
    day               timestamptz NOT NULL,
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
    PRIMARY KEY (tenant_id, meter_version_id, customer, day, group_key)
);

CREATE TABLE usage_rollup_values_daily (
    tenant_id         uuid NOT NULL,
    meter_version_id  bigint NOT NULL,
    customer          text NOT NULL,
    day               timestamptz NOT NULL,
    group_key         bytea NOT NULL,
    group_values      text[] NOT NULL,
    value_key         bytea NOT NULL,
    PRIMARY KEY (tenant_id, meter_version_id, customer, day, group_key, value_key)
);

-- Versions whose rollups predate the daily tables are rebuilt by the backfill.
UPDATE meter_versions SET rollup_state = 'backfilling', rollups_ready_at = NULL WHERE rollup_state = 'ready';
"""

DOWNGRADE = """
DROP TABLE usage_rollup_values_daily;
DROP TABLE usage_rollups_daily;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
