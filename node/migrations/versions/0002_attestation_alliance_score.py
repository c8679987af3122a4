"""the attested alliance score, so that a fall across a threshold revokes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 03:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null for attestations issued before: the band check alone applies to them.
    with op.batch_alter_table("attestation") as batch:
        batch.add_column(sa.Column("alliance_score", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attestation") as batch:
        batch.drop_column("alliance_score")
