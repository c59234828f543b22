"""Invoice profiles: the seller details a tenant prints on its invoice documents.

One row per tenant, replaced as a whole by `PUT /v1/account/invoice_profile`. It is presentation
only: no amount, no ledger posting and no stored invoice depends on it, so a document rendered
again after the profile changed shows the new details (the invoice itself never changes).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE invoice_profiles (
    tenant_id      uuid PRIMARY KEY REFERENCES tenants (id),
    seller_name    text NOT NULL CHECK (length(seller_name) BETWEEN 1 AND 200),
    email          text CHECK (length(email) BETWEEN 3 AND 254),
    address_lines  jsonb NOT NULL DEFAULT '[]'
        CHECK (jsonb_typeof(address_lines) = 'array' AND jsonb_array_length(address_lines) <= 8),
    tax_ids        jsonb NOT NULL DEFAULT '[]'
        CHECK (jsonb_typeof(tax_ids) = 'array' AND jsonb_array_length(tax_ids) <= 10),
    locale         text NOT NULL DEFAULT 'en_US' CHECK (length(locale) BETWEEN 2 AND 32),
    notes          jsonb NOT NULL DEFAULT '[]'
        CHECK (jsonb_typeof(notes) = 'array' AND jsonb_array_length(notes) <= 10),
    footer         text CHECK (length(footer) <= 500),
    updated_at     timestamptz NOT NULL
);
"""

DOWNGRADE = "DROP TABLE invoice_profiles;"


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
