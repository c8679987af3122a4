"""a nonce may carry what its grant needs (issue 14, OpenID4VCI)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 00:00:00

The ``nonce`` table keeps every single-use, short-lived secret of the node by its
SHA-256: proof-of-possession nonces, verification challenges, and now the secrets of
OpenID4VCI (pre-authorized codes, c_nonces, access tokens, pushed authorization
requests, authorization codes, DPoP proof ids). Some of those need a few facts beside
them (a transaction code's digest, a PKCE challenge, the key an access token is bound
to): the new nullable JSON column ``data``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nonce") as batch:
        batch.add_column(sa.Column("data", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nonce") as batch:
        batch.drop_column("data")
