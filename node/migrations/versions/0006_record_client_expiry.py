"""a record names the client that pushed it; clients may expire (issue 17, gaps B and H)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 00:00:00

``record.client_id``: the client credentials a record came with, so that an operator can
withdraw what one client pushed since a time (a leaked department token); NULL for the
rows pushed before this revision, which no client withdrawal touches. Indexed with
``recorded_at`` for that look-up. ``client.expires_at``: a client refused from then on
(NULL: no expiry, as every client before this revision).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("record") as batch:
        batch.add_column(
            sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch.create_index("ix_record_client_recorded", ["client_id", "recorded_at"])
    with op.batch_alter_table("client") as batch:
        batch.add_column(sa.Column("expires_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("client") as batch:
        batch.drop_column("expires_at")
    with op.batch_alter_table("record") as batch:
        batch.drop_index("ix_record_client_recorded")
        batch.drop_column("client_id")
