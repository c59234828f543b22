"""Threshold billing: a subscription's billing threshold, and why an invoice was issued.

- `subscription_billing_thresholds`: the setting as facts, numbered 0, 1, 2 … per subscription in
  recording order, never edited or deleted (like `subscription_timeline`). The setting in force is
  the last fact; `amount_minor` NULL turns threshold billing off. `currency` is the subscription's,
  written with the amount so a reader never has to guess the unit of a number.
- `invoices.billing_reason`: `period` (the billing run's draft, finalized after its grace period)
  or `threshold` (issued at once because a subscription's usage so far passed its threshold).
  Frozen once written. The one-draft-per-customer-and-currency rule holds for `period` drafts; a
  `threshold` invoice is a draft only inside the transaction that creates and finalizes it, and at
  most one such draft exists per customer and currency.

Revision ID: 0015
Revises: 0012
Create Date: 2026-12-10
"""

from alembic import op

revision = "0015"
down_revision = "0012"
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

ALTER TABLE invoices ADD COLUMN billing_reason text NOT NULL DEFAULT 'period'
    CHECK (billing_reason IN ('period', 'threshold'));

DROP INDEX invoices_one_draft;
CREATE UNIQUE INDEX invoices_one_draft ON invoices (tenant_id, customer_id, currency)
    WHERE status = 'draft' AND billing_reason = 'period';
CREATE UNIQUE INDEX invoices_one_threshold_draft ON invoices (tenant_id, customer_id, currency)
    WHERE status = 'draft' AND billing_reason = 'threshold';

CREATE FUNCTION invoices_keep_billing_reason() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.billing_reason <> OLD.billing_reason THEN
        RAISE EXCEPTION 'an invoice keeps its billing reason' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER invoices_keep_billing_reason BEFORE UPDATE ON invoices
    FOR EACH ROW EXECUTE FUNCTION invoices_keep_billing_reason();
"""

DOWNGRADE = """
DROP TRIGGER invoices_keep_billing_reason ON invoices;
DROP FUNCTION invoices_keep_billing_reason();
DROP INDEX invoices_one_threshold_draft;
DROP INDEX invoices_one_draft;
CREATE UNIQUE INDEX invoices_one_draft ON invoices (tenant_id, customer_id, currency) WHERE status = 'draft';
ALTER TABLE invoices DROP COLUMN billing_reason;
DROP TABLE subscription_billing_thresholds;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
