"""One-off charges (invoice items): a quantity of a one-off catalog price, charged to a customer at a
moment, billed on the customer's next invoice (or at once, on an invoice of its own).

Both tables are append-only facts, like the invoicing terms of 0010 and 0012:

- `one_off_charges`: the charge as asked for. Its currency is its price's; its amount is decided
  when it is billed, by the same rating as every other line (the price never changes: prices are
  immutable). An optional idempotency key is unique per tenant.
- `one_off_charge_cancellations`: a pending charge cancelled (at most one per charge: primary key).

A charge's status is derived, never stored: `cancelled` with a cancellation, `invoiced` once a line
of a finalized invoice (any status but draft) carries it, else `pending`. The line's key holds the
charge's id (kind `one_off`, reference = the charge id), so the UNIQUE constraint on invoice lines
bills a charge at most once. Two triggers keep cancelling and invoicing apart even if the code that
serializes them (the customer's invoicing lock) were bypassed: a charge on a finalized invoice
cannot be cancelled, and a draft carrying a cancelled charge cannot be finalized.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE one_off_charges (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    customer_id      uuid NOT NULL,
    price_id         uuid NOT NULL,
    currency         text NOT NULL,
    quantity         numeric NOT NULL CHECK (quantity > 0 AND quantity <= 1000000000000),
    description      text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    charged_at       timestamptz NOT NULL,
    invoice_now      boolean NOT NULL DEFAULT false,
    idempotency_key  text CHECK (idempotency_key IS NULL OR length(idempotency_key) BETWEEN 1 AND 255),
    recorded_at      timestamptz NOT NULL,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    FOREIGN KEY (tenant_id, price_id) REFERENCES prices (tenant_id, id)
);
CREATE INDEX one_off_charges_customer ON one_off_charges (tenant_id, customer_id, id);
CREATE UNIQUE INDEX one_off_charges_idempotency ON one_off_charges (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE one_off_charge_cancellations (
    tenant_id     uuid NOT NULL,
    charge_id     uuid NOT NULL,
    cancelled_at  timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, charge_id),
    FOREIGN KEY (tenant_id, charge_id) REFERENCES one_off_charges (tenant_id, id)
);

CREATE TRIGGER one_off_charges_append_only BEFORE UPDATE OR DELETE ON one_off_charges
    FOR EACH ROW EXECUTE FUNCTION invoicing_refuse_change();
CREATE TRIGGER one_off_charges_no_truncate BEFORE TRUNCATE ON one_off_charges
    FOR EACH STATEMENT EXECUTE FUNCTION invoicing_refuse_change();
CREATE TRIGGER one_off_charge_cancellations_append_only BEFORE UPDATE OR DELETE ON one_off_charge_cancellations
    FOR EACH ROW EXECUTE FUNCTION invoicing_refuse_change();
CREATE TRIGGER one_off_charge_cancellations_no_truncate BEFORE TRUNCATE ON one_off_charge_cancellations
    FOR EACH STATEMENT EXECUTE FUNCTION invoicing_refuse_change();

-- An invoiced charge is never cancelled: its line is looked up by its full key (the UNIQUE index).
CREATE FUNCTION one_off_charge_cancellations_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM one_off_charges c
        JOIN invoice_lines l
          ON l.tenant_id = c.tenant_id AND l.customer_id = c.customer_id AND l.currency = c.currency
         AND l.subscription_id = '' AND l.price_id = c.price_id::text
         AND l.service_start = c.charged_at AND l.service_end = c.charged_at AND l.group_values = '[]'::jsonb
         AND l.kind = 'one_off' AND l.reference = c.id::text
        JOIN invoices i ON i.id = l.invoice_id
        WHERE c.tenant_id = NEW.tenant_id AND c.id = NEW.charge_id AND i.status <> 'draft') THEN
        RAISE EXCEPTION 'one-off charge % is invoiced: it is never cancelled', NEW.charge_id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER one_off_charge_cancellations_guard BEFORE INSERT ON one_off_charge_cancellations
    FOR EACH ROW EXECUTE FUNCTION one_off_charge_cancellations_guard();

-- A draft carrying a cancelled charge is never finalized (the billing run takes the line away).
CREATE FUNCTION invoices_refuse_cancelled_charges() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM invoice_lines l
        JOIN one_off_charge_cancellations x ON x.tenant_id = l.tenant_id AND x.charge_id::text = l.reference
        WHERE l.invoice_id = NEW.id AND l.kind = 'one_off') THEN
        RAISE EXCEPTION 'invoice % carries a cancelled one-off charge', NEW.id USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER invoices_refuse_cancelled_charges BEFORE UPDATE ON invoices
    FOR EACH ROW WHEN (OLD.status = 'draft' AND NEW.status <> 'draft')
    EXECUTE FUNCTION invoices_refuse_cancelled_charges();
"""

DOWNGRADE = """
DROP TRIGGER invoices_refuse_cancelled_charges ON invoices;
DROP FUNCTION invoices_refuse_cancelled_charges();
DROP TABLE one_off_charge_cancellations, one_off_charges;
DROP FUNCTION one_off_charge_cancellations_guard();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
