"""Subscription timelines: withdrawals of scheduled facts.

A fact recorded for a later moment (a plan change at period end, a phase, a quantity change) can be
taken back before it takes effect. The timeline stays append-only: the withdrawal is a new fact of
kind `withdrawn` whose payload names the withdrawn fact's `sequence` (`withdraws`), and the core
reads the timeline as if the withdrawn fact had never been recorded. The database holds what it can
check on its own: a withdrawal names an earlier fact other than the start, and no fact is withdrawn
twice. Whether the fact was still ahead is the core's rule (it compares moments of two rows).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

KINDS_0008 = (
    "'started', 'items_changed', 'quantity_changed', 'paused', 'resumed', 'cancel_scheduled', "
    "'cancel_unscheduled', 'canceled'"
)

UPGRADE = f"""
ALTER TABLE subscription_timeline DROP CONSTRAINT subscription_timeline_kind_check;
ALTER TABLE subscription_timeline ADD CONSTRAINT subscription_timeline_kind_check
    CHECK (kind IN ({KINDS_0008}, 'withdrawn'));

-- A withdrawal names a fact recorded before it, never the start (sequence 0).
ALTER TABLE subscription_timeline ADD CONSTRAINT subscription_timeline_withdraws_an_earlier_fact
    CHECK (kind <> 'withdrawn'
           OR (jsonb_typeof(payload -> 'withdraws') = 'number'
               AND (payload ->> 'withdraws')::integer BETWEEN 1 AND sequence - 1));

-- A fact is withdrawn at most once.
CREATE UNIQUE INDEX subscription_timeline_withdrawn_once
    ON subscription_timeline (subscription_id, ((payload ->> 'withdraws')::integer))
    WHERE kind = 'withdrawn';
"""

DOWNGRADE = f"""
DROP INDEX subscription_timeline_withdrawn_once;
ALTER TABLE subscription_timeline DROP CONSTRAINT subscription_timeline_withdraws_an_earlier_fact;
ALTER TABLE subscription_timeline DROP CONSTRAINT subscription_timeline_kind_check;
ALTER TABLE subscription_timeline ADD CONSTRAINT subscription_timeline_kind_check CHECK (kind IN ({KINDS_0008}));
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
