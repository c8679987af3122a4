"""token buckets shared by every worker of a node (issue 17, gap F)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 00:00:00

``rate_bucket``: one row per rate-limited caller (a resident, a client, an address; its
key a SHA-256, so the table names no one): the tokens left and when. Workers lease
tokens from a row in small batches, so the limit holds across workers and processes
without a write per request (node/services/rate_limit.py). Rows of idle callers are
deleted as they come full again (indexed by ``updated_at``).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_bucket",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_rate_bucket_updated_at", "rate_bucket", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_rate_bucket_updated_at", table_name="rate_bucket")
    op.drop_table("rate_bucket")
