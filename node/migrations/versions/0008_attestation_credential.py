"""the credential type of an attestation (issue 18: the domestic-service credential)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 14:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every attestation issued before is a credit standing, the only type there was.
    with op.batch_alter_table("attestation") as batch:
        batch.add_column(
            sa.Column(
                "credential",
                sa.String(length=32),
                nullable=False,
                server_default="credit_standing",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("attestation") as batch:
        batch.drop_column("credential")
