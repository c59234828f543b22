"""Late usage: the draft an open flag's lines were placed on.

- `late_usage.placed_on`: the draft invoice the billing run last placed the flag's correction on
  (NULL: on none). Finalizing that draft resolves the flag; a flag made after the draft was
  computed is on no draft yet, so it stays open for the next run to bill, whatever its period.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-22
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE late_usage ADD COLUMN placed_on uuid")


def downgrade() -> None:
    op.execute("ALTER TABLE late_usage DROP COLUMN placed_on")
