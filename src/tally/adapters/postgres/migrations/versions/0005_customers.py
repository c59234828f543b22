"""Customers and test clocks.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- A test clock: a frozen time for the customers created on it, moved forward by `advance`.
-- While `status` is 'advancing', `frozen_time` already holds the new time, `advancing_from` the time it
-- moved from, and `advance_started_at` (wall-clock time) when the advance began: an advance that
-- crashed is resumed from these by the next one (tally.app.advance_test_clock).
CREATE TABLE test_clocks (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants (id),
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    frozen_time         timestamptz NOT NULL,
    status              text NOT NULL CHECK (status IN ('ready', 'advancing')),
    advancing_from      timestamptz,
    advance_started_at  timestamptz,
    metadata            jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    CHECK ((status = 'advancing') = (advancing_from IS NOT NULL)),
    CHECK ((status = 'advancing') = (advance_started_at IS NOT NULL)),
    CHECK (advancing_from IS NULL OR advancing_from < frozen_time)
);
CREATE UNIQUE INDEX test_clocks_tenant ON test_clocks (tenant_id, id);

-- Time on a test clock only moves forward, whatever the code above it does.
CREATE FUNCTION test_clocks_move_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.frozen_time < OLD.frozen_time THEN
        RAISE EXCEPTION 'a test clock never goes backwards (% → %)', OLD.frozen_time, NEW.frozen_time
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.tenant_id <> OLD.tenant_id OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'a test clock keeps its tenant and creation time' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_clocks_move_forward BEFORE UPDATE ON test_clocks
    FOR EACH ROW EXECUTE FUNCTION test_clocks_move_forward();

-- A customer of the tenant. `external_id` is the company's own id for it: the `customer` field of its
-- usage events, matched by value (events may arrive before the customer exists). `currency` is an
-- ISO 4217 code or one of the tenant's units, set once. `test_clock_id` is set at creation only.
CREATE TABLE customers (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    external_id      text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 255),
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email            text CHECK (length(email) BETWEEN 3 AND 254),
    currency         text CHECK (currency ~ '^[A-Z][A-Z0-9_]{1,15}$'),
    billing_address  jsonb CHECK (billing_address IS NULL OR jsonb_typeof(billing_address) = 'object'),
    tax_ids          jsonb NOT NULL DEFAULT '[]'
        CHECK (jsonb_typeof(tax_ids) = 'array' AND jsonb_array_length(tax_ids) <= 10),
    timezone         text NOT NULL DEFAULT 'UTC' CHECK (length(timezone) BETWEEN 1 AND 64),
    metadata         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    test_clock_id    uuid,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    UNIQUE (tenant_id, external_id),
    -- A composite key: a customer can never be on another tenant's test clock.
    FOREIGN KEY (tenant_id, test_clock_id) REFERENCES test_clocks (tenant_id, id)
);
CREATE UNIQUE INDEX customers_tenant ON customers (tenant_id, id);
CREATE INDEX customers_test_clock ON customers (test_clock_id, id) WHERE test_clock_id IS NOT NULL;

-- What the rest of billing relies on: a customer's currency, once set, and its clock never change.
CREATE FUNCTION customers_keep_identity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.tenant_id <> OLD.tenant_id OR NEW.external_id <> OLD.external_id
       OR NEW.test_clock_id IS DISTINCT FROM OLD.test_clock_id
       OR (OLD.currency IS NOT NULL AND NEW.currency IS DISTINCT FROM OLD.currency) THEN
        RAISE EXCEPTION 'a customer keeps its tenant, external id, test clock and currency'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER customers_keep_identity BEFORE UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION customers_keep_identity();
"""

DOWNGRADE = """
DROP TRIGGER customers_keep_identity ON customers;
DROP FUNCTION customers_keep_identity();
DROP TABLE customers;
DROP TRIGGER test_clocks_move_forward ON test_clocks;
DROP FUNCTION test_clocks_move_forward();
DROP TABLE test_clocks;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
