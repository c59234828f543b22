"""Late usage: the tenant's policy for it, the extra invoice and credit notes it may become, and the
resolution of its flags.

- `tenant_billing_settings`: a tenant's billing settings, one row per change (append-only like the
  other invoicing facts); the latest row is in force, and the rows before it say what applied when.
  Today it holds `late_usage_policy`: `next_invoice` (the difference for a finalized period is a
  correction line on the next invoice) or `separate` (an extra invoice for more, a credit note
  against the invoice that billed the period for less). A tenant without a row has the default,
  `next_invoice`.
- `invoices.billing_reason`: why the invoice was made — `period` (the billing run's draft, finalized
  after its grace period), `late_usage` (the extra invoice of the `separate` policy) or `threshold`
  (issued at once because usage so far passed a subscription's threshold; migration 0015). At most
  one draft per customer, currency and reason (a threshold invoice is a draft only inside the
  transaction that creates and finalizes it); an invoice keeps its reason.
- `credit_note_lines`: the line differences a late-usage credit note carries, under the same line
  key and sequence as invoice lines, so the next recomputation counts them as billed. A key and
  sequence already on an invoice line is refused (the billing run also holds the customer's lock,
  so an invoice line cannot take a key and sequence a credit note holds).
- `late_usage` flags are resolved once and then frozen: `resolution` is `invoice:<id>`,
  `credit_note:<id>`, `no_change` or `beyond_horizon`, set together with `resolved_at`.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE tenant_billing_settings (
    id                 uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL REFERENCES tenants (id),
    late_usage_policy  text NOT NULL CHECK (late_usage_policy IN ('next_invoice', 'separate')),
    recorded_at        timestamptz NOT NULL
);
CREATE INDEX tenant_billing_settings_latest ON tenant_billing_settings (tenant_id, recorded_at DESC, id DESC);
CREATE TRIGGER tenant_billing_settings_append_only BEFORE UPDATE OR DELETE ON tenant_billing_settings
    FOR EACH ROW EXECUTE FUNCTION invoicing_refuse_change();
CREATE TRIGGER tenant_billing_settings_no_truncate BEFORE TRUNCATE ON tenant_billing_settings
    FOR EACH STATEMENT EXECUTE FUNCTION invoicing_refuse_change();

ALTER TABLE invoices ADD COLUMN billing_reason text NOT NULL DEFAULT 'period'
    CHECK (billing_reason IN ('period', 'late_usage', 'threshold'));
DROP INDEX invoices_one_draft;
CREATE UNIQUE INDEX invoices_one_draft ON invoices (tenant_id, customer_id, currency, billing_reason)
    WHERE status = 'draft';

CREATE FUNCTION invoices_keep_billing_reason() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.billing_reason <> OLD.billing_reason THEN
        RAISE EXCEPTION 'an invoice keeps its billing reason' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER invoices_keep_billing_reason BEFORE UPDATE ON invoices
    FOR EACH ROW EXECUTE FUNCTION invoices_keep_billing_reason();

CREATE TABLE credit_note_lines (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    credit_note_id   uuid NOT NULL REFERENCES credit_notes (id),
    customer_id      uuid NOT NULL,
    currency         text NOT NULL,
    subscription_id  text NOT NULL,
    price_id         text NOT NULL,
    service_start    timestamptz NOT NULL,
    service_end      timestamptz NOT NULL CHECK (service_end >= service_start),
    group_values     jsonb NOT NULL CHECK (jsonb_typeof(group_values) = 'array'),
    kind             text NOT NULL CHECK (kind IN ('usage', 'usage_minimum', 'usage_cap', 'discount')),
    reference        text NOT NULL,
    sequence         integer NOT NULL CHECK (sequence >= 1),
    amount_minor               bigint NOT NULL,
    amount_minor_total         bigint NOT NULL,
    amount_minor_billed_prior  bigint NOT NULL,
    quantity         numeric,
    product          text NOT NULL,
    description      text NOT NULL,
    explanation      jsonb NOT NULL CHECK (jsonb_typeof(explanation) = 'object'),
    created_at       timestamptz NOT NULL,
    CHECK (amount_minor = amount_minor_total - amount_minor_billed_prior),
    UNIQUE (tenant_id, customer_id, currency, subscription_id, price_id, service_start, service_end, group_values,
            kind, reference, sequence),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);
CREATE INDEX credit_note_lines_customer ON credit_note_lines (tenant_id, customer_id, currency);
CREATE INDEX credit_note_lines_note ON credit_note_lines (credit_note_id);

CREATE FUNCTION credit_note_lines_not_invoiced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM invoice_lines l
               WHERE l.tenant_id = NEW.tenant_id AND l.customer_id = NEW.customer_id AND l.currency = NEW.currency
                 AND l.subscription_id = NEW.subscription_id AND l.price_id = NEW.price_id
                 AND l.service_start = NEW.service_start AND l.service_end = NEW.service_end
                 AND l.group_values = NEW.group_values AND l.kind = NEW.kind AND l.reference = NEW.reference
                 AND l.sequence = NEW.sequence) THEN
        RAISE EXCEPTION 'line key and sequence already on an invoice' USING ERRCODE = 'unique_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER credit_note_lines_not_invoiced BEFORE INSERT ON credit_note_lines
    FOR EACH ROW EXECUTE FUNCTION credit_note_lines_not_invoiced();
CREATE TRIGGER credit_note_lines_append_only BEFORE UPDATE OR DELETE ON credit_note_lines
    FOR EACH ROW EXECUTE FUNCTION invoicing_refuse_change();
CREATE TRIGGER credit_note_lines_no_truncate BEFORE TRUNCATE ON credit_note_lines
    FOR EACH STATEMENT EXECUTE FUNCTION invoicing_refuse_change();

ALTER TABLE late_usage ADD CONSTRAINT late_usage_resolution CHECK (
    (resolved_at IS NULL) = (resolution IS NULL)
    AND (resolution IS NULL OR resolution IN ('no_change', 'beyond_horizon')
         OR resolution ~ '^(invoice|credit_note):[0-9a-f-]{36}$'));
CREATE INDEX late_usage_tenant ON late_usage (tenant_id, id);

CREATE FUNCTION late_usage_resolved_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'late usage flags are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.resolved_at IS NOT NULL
       OR NEW.id <> OLD.id OR NEW.tenant_id <> OLD.tenant_id OR NEW.customer <> OLD.customer
       OR NEW.event_id <> OLD.event_id OR NEW."timestamp" <> OLD."timestamp" OR NEW.kind <> OLD.kind
       OR NEW.flagged_at <> OLD.flagged_at THEN
        RAISE EXCEPTION 'a late usage flag is resolved once, and only its resolution is written'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER late_usage_resolved_once BEFORE UPDATE OR DELETE ON late_usage
    FOR EACH ROW EXECUTE FUNCTION late_usage_resolved_once();
"""

DOWNGRADE = """
DROP TRIGGER late_usage_resolved_once ON late_usage;
DROP FUNCTION late_usage_resolved_once();
DROP INDEX late_usage_tenant;
ALTER TABLE late_usage DROP CONSTRAINT late_usage_resolution;
DROP TABLE credit_note_lines;
DROP FUNCTION credit_note_lines_not_invoiced();
DROP TRIGGER invoices_keep_billing_reason ON invoices;
DROP FUNCTION invoices_keep_billing_reason();
DROP INDEX invoices_one_draft;
ALTER TABLE invoices DROP COLUMN billing_reason;
CREATE UNIQUE INDEX invoices_one_draft ON invoices (tenant_id, customer_id, currency) WHERE status = 'draft';
DROP TABLE tenant_billing_settings;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
