"""The ledger's batch writer refuses a batch from inside its statement.

A plain batch is sent in one pipeline: insert the transactions and entries, lock the accounts,
then move the balances only if every floor holds at the batch's lowest point, and commit. When a
floor would break, the balance statement calls this function, which raises: the whole database
transaction rolls back (nothing half written) and the writer decides the batch one transaction at
a time instead. A function, because only a raised error can stop the COMMIT already queued behind.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
CREATE FUNCTION ledger_refuse_batch() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the batch would take an account below its floor; decide it one by one'
        USING ERRCODE = 'TL001';
END $$;
"""
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION ledger_refuse_batch()")
