"""The ledger's batch writer: a refusal raised from inside its statements, and entries checked by
the write path instead of by foreign keys.

A plain batch is sent in one pipeline: insert the transactions and entries, lock the accounts,
then move the balances only if every floor holds at the batch's lowest point. When a floor would
break, the balance statement calls `ledger_refuse_batch()`, which raises: the whole database
transaction rolls back and the writer decides the batch one transaction at a time instead. A
function, because only a raised error stops the commit already queued behind it.

The entries' two foreign keys (to their transaction and to their account) and the transactions' key
to their tenant cost a third of the database's work per entry, and every concurrent writer took a
share lock on the same tenant row. They guard nothing the write path does not already guarantee, so
they go:
  - an entry is only ever inserted by the statement that inserts its transaction, joined to it;
  - every entry's account is read, for the tenant, in the same database transaction before anything
    commits (locked and checked by the core, or counted by the balance statement, which refuses the
    batch if one is missing); the accounts' own key to their tenant stays;
  - nothing is ever removed: transactions and entries refuse UPDATE, DELETE and TRUNCATE (0001), and
    now accounts refuse DELETE and TRUNCATE, and any change to what identifies them (id, tenant,
    unit, normal balance). Only their cached balances and descriptive fields change.
The integrity check proves it from the data (`entry_must_reference_transaction`,
`entry_must_reference_account`, `transaction_must_belong_to_a_tenant`).

Entries also lose an index: their primary key becomes (tenant_id, id), which serves both lookups
by id and a tenant's entries in id order; the separate index on id alone served nothing else.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE FUNCTION ledger_refuse_batch() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the batch would take an account below its floor; decide it one by one'
        USING ERRCODE = 'TL001';
END $$;

ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_tenant_id_transaction_id_fkey;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_tenant_id_account_id_fkey;
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_tenant_id_fkey;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_pkey;
DROP INDEX ledger_entries_tenant;
ALTER TABLE ledger_entries ADD PRIMARY KEY (tenant_id, id);

-- Column triggers: they fire only when a statement sets one of these columns, so moving balances
-- pays nothing for them.
CREATE TRIGGER ledger_accounts_identity_fixed BEFORE UPDATE OF id, tenant_id, unit_code, unit_scale, normal_balance
    ON ledger_accounts FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_accounts_kept BEFORE DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_accounts_no_truncate BEFORE TRUNCATE ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
"""

DOWNGRADE = """
DROP TRIGGER ledger_accounts_no_truncate ON ledger_accounts;
DROP TRIGGER ledger_accounts_kept ON ledger_accounts;
DROP TRIGGER ledger_accounts_identity_fixed ON ledger_accounts;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_pkey;
ALTER TABLE ledger_entries ADD PRIMARY KEY (id);
CREATE INDEX ledger_entries_tenant ON ledger_entries (tenant_id, id);
ALTER TABLE ledger_transactions ADD FOREIGN KEY (tenant_id) REFERENCES tenants (id);
ALTER TABLE ledger_entries ADD FOREIGN KEY (tenant_id, account_id) REFERENCES ledger_accounts (tenant_id, id);
ALTER TABLE ledger_entries ADD FOREIGN KEY (tenant_id, transaction_id) REFERENCES ledger_transactions (tenant_id, id);
DROP FUNCTION ledger_refuse_batch();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
