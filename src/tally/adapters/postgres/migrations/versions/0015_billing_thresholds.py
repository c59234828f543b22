"""Threshold billing: a subscription's billing threshold.

- `subscription_billing_thresholds`: the setting as facts, numbered 0, 1, 2 … per subscription in
  recording order, never edited or deleted (like `subscription_timeline`). The setting in force is
  the last fact; `amount_minor` NULL turns threshold billing off. `currency` is the subscription's,
  written with the amount so a reader never has to guess the unit of a number.

Threshold invoices are `invoices.billing_reason = 'threshold'` (the column and its rules: 0013).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-10
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE subscription_billing_thresholds (
    tenant_id        uuid NOT NULL,
    subscription_id  uuid NOT NULL,
    sequence         integer NOT NULL CHECK (sequence BETWEEN 0 AND 999),
    amount_minor     bigint CHECK (amount_minor IS NULL OR amount_minor BETWEEN 1 AND 1000000000000000),
    currency         text NOT NULL CHECK (length(currency) BETWEEN 1 AND 32),
    -- The customer's clock when recorded: the setting is in force from then on.
    recorded_at      timestamptz NOT NULL,
    PRIMARY KEY (subscription_id, sequence),
    FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id)
);
CREATE INDEX subscription_billing_thresholds_tenant ON subscription_billing_thresholds (tenant_id, subscription_id);

CREATE TRIGGER subscription_billing_thresholds_append_only BEFORE UPDATE OR DELETE ON subscription_billing_thresholds
    FOR EACH ROW EXECUTE FUNCTION subscription_timeline_refuse_change();
CREATE TRIGGER subscription_billing_thresholds_no_truncate BEFORE TRUNCATE ON subscription_billing_thresholds
    FOR EACH STATEMENT EXECUTE FUNCTION subscription_timeline_refuse_change();
"""

DOWNGRADE = """
DROP TABLE subscription_billing_thresholds;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
