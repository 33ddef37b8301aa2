"""oauth_refresh_tokens: rotating OAuth refresh tokens, sealed, one row per provider

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def Timestamp() -> sa.DateTime:
    # timestamptz on PostgreSQL; naive UTC text on SQLite (see poller.adapters.sql.types).
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "oauth_refresh_tokens",
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("seed_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("access_expires_at", Timestamp(), nullable=True),
        sa.Column("refreshed_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_oauth_refresh_tokens")),
    )


def downgrade() -> None:
    op.drop_table("oauth_refresh_tokens")
