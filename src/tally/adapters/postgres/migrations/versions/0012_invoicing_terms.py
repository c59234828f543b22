"""Price caps, and the end of a coupon, a tax rate or a credit grant.

Both tables are append-only like the other invoicing facts of 0010: a cap is never edited (a new
one is recorded), and ending a term is a new row, never a change to the term itself.

- `price_caps`: at most `maximum_amount` (major units of the price's currency) per billing period
  of one usage price, for one customer (or one of its subscriptions).
- `invoicing_term_ends`: a coupon archived (no new redemptions), a tax rate retired (no longer
  applied to invoices computed after it), or a credit grant expired early (its remainder posted
  as breakage at that moment). One end per term: ending twice is refused by the primary key.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE price_caps (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    customer_id      uuid NOT NULL,
    subscription_id  uuid,
    price_id         uuid NOT NULL,
    currency         text NOT NULL,
    maximum_amount   numeric NOT NULL CHECK (maximum_amount >= 0),
    recorded_at      timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id),
    FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id)
);
CREATE INDEX price_caps_customer ON price_caps (tenant_id, customer_id);

CREATE TABLE invoicing_term_ends (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    term         text NOT NULL CHECK (term IN ('coupon', 'tax_rate', 'credit_grant')),
    term_id      uuid NOT NULL,
    ended_at     timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, term, term_id)
);

CREATE TRIGGER price_caps_append_only BEFORE UPDATE OR DELETE ON price_caps
    FOR EACH ROW EXECUTE FUNCTION invoicing_refuse_change();
CREATE TRIGGER price_caps_no_truncate BEFORE TRUNCATE ON price_caps
    FOR EACH STATEMENT EXECUTE FUNCTION invoicing_refuse_change();
CREATE TRIGGER invoicing_term_ends_append_only BEFORE UPDATE OR DELETE ON invoicing_term_ends
    FOR EACH ROW EXECUTE FUNCTION invoicing_refuse_change();
CREATE TRIGGER invoicing_term_ends_no_truncate BEFORE TRUNCATE ON invoicing_term_ends
    FOR EACH STATEMENT EXECUTE FUNCTION invoicing_refuse_change();
"""

DOWNGRADE = """
DROP TABLE invoicing_term_ends, price_caps;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
