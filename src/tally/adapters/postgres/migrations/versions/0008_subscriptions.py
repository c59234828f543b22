"""Subscriptions: one row per subscription, and its immutable timeline of facts.

A subscription's meaning is its timeline (tally.core.subscriptions): facts appended in recording
order, never edited or deleted — the database refuses both. The `subscriptions` row holds what
never changes (tenant, customer, creation) and a cache of the state derived at `status_as_of`
(status, next_due_at), refreshed by every write and by test clock advances; the cache is never the
source of truth, the timeline is.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE subscriptions (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    customer_id   uuid NOT NULL,
    -- The plan version it was created on (NULL: created from a list of prices).
    plan_version_id uuid,
    metadata      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at    timestamptz NOT NULL,
    -- Cache of the derived state, as of `status_as_of` (the customer's clock at the last refresh).
    status        text NOT NULL CHECK (status IN ('not_started', 'trialing', 'active', 'past_due', 'paused',
                                                  'canceled', 'ended')),
    status_as_of  timestamptz NOT NULL,
    started_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    -- The next moment a billing event can become due (NULL: never again): what a billing run looks for.
    next_due_at   timestamptz,
    -- Number of timeline entries: the next entry's sequence, checked on append.
    entries       integer NOT NULL CHECK (entries BETWEEN 1 AND 1000),
    updated_at    timestamptz NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    FOREIGN KEY (tenant_id, plan_version_id) REFERENCES plan_versions (tenant_id, id)
);
CREATE INDEX subscriptions_customer ON subscriptions (tenant_id, customer_id, id);
CREATE INDEX subscriptions_next_due ON subscriptions (next_due_at) WHERE next_due_at IS NOT NULL;

-- A subscription keeps its tenant, customer, origin and creation time.
CREATE FUNCTION subscriptions_keep_identity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.tenant_id <> OLD.tenant_id OR NEW.customer_id <> OLD.customer_id
       OR NEW.plan_version_id IS DISTINCT FROM OLD.plan_version_id OR NEW.created_at <> OLD.created_at
       OR NEW.started_at <> OLD.started_at OR NEW.entries < OLD.entries THEN
        RAISE EXCEPTION 'a subscription keeps its tenant, customer, plan version, creation and start'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER subscriptions_keep_identity BEFORE UPDATE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION subscriptions_keep_identity();

-- The facts, one row each, numbered 0, 1, 2 … in recording order. `payload` is the fact's fields
-- (tally.adapters.postgres.subscriptions encodes and decodes them); `recorded_at` is the customer's
-- clock when it was recorded, `effective_at` when it takes effect (past, now or future).
CREATE TABLE subscription_timeline (
    tenant_id        uuid NOT NULL,
    subscription_id  uuid NOT NULL,
    sequence         integer NOT NULL CHECK (sequence BETWEEN 0 AND 999),
    kind             text NOT NULL CHECK (kind IN ('started', 'items_changed', 'quantity_changed', 'paused',
                                                   'resumed', 'cancel_scheduled', 'cancel_unscheduled',
                                                   'canceled')),
    effective_at     timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL,
    payload          jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    PRIMARY KEY (subscription_id, sequence),
    CHECK ((sequence = 0) = (kind = 'started')),
    FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id)
);

-- Append-only: nothing is edited; a correction is a new fact.
CREATE FUNCTION subscription_timeline_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the subscription timeline is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER subscription_timeline_append_only BEFORE UPDATE OR DELETE ON subscription_timeline
    FOR EACH ROW EXECUTE FUNCTION subscription_timeline_refuse_change();
CREATE TRIGGER subscription_timeline_no_truncate BEFORE TRUNCATE ON subscription_timeline
    FOR EACH STATEMENT EXECUTE FUNCTION subscription_timeline_refuse_change();
"""

DOWNGRADE = """
DROP TRIGGER subscription_timeline_no_truncate ON subscription_timeline;
DROP TRIGGER subscription_timeline_append_only ON subscription_timeline;
DROP FUNCTION subscription_timeline_refuse_change();
DROP TABLE subscription_timeline;
DROP TRIGGER subscriptions_keep_identity ON subscriptions;
DROP FUNCTION subscriptions_keep_identity();
DROP TABLE subscriptions;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
