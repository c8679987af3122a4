"""an index on the audit log's actor and time (issue 16, the kiosk)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 00:00:00

A service point's kiosk lists the counter's decisions of the day
(GET /v1/presentation-requests?since=...), read from the audit entries it is the actor
of: without an index every look-up would read the whole log.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("auditentry") as batch:
        batch.create_index("ix_auditentry_actor_at", ["actor", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("auditentry") as batch:
        batch.drop_index("ix_auditentry_actor_at")
