"""webhook_subscriptions: each provider's webhook subscription state and its last event

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def Timestamp() -> sa.DateTime:
    # timestamptz on PostgreSQL; naive UTC text on SQLite (see poller.adapters.sql.types).
    return sa.DateTime(timezone=True)


STATES_SQL = "'active', 'expiring', 'blacklisted', 'deactivated', 'missing', 'manual'"


def upgrade() -> None:
    op.create_table(
        "webhook_subscriptions",
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=True),
        sa.Column("vendor_id", sa.String(length=255), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("expires_at", Timestamp(), nullable=True),
        sa.Column("detail", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("checked_at", Timestamp(), nullable=True),
        sa.Column("last_event_at", Timestamp(), nullable=True),
        sa.CheckConstraint(
            f"state IS NULL OR state IN ({STATES_SQL})",
            name=op.f("ck_webhook_subscriptions_state"),
        ),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_webhook_subscriptions")),
    )


def downgrade() -> None:
    op.drop_table("webhook_subscriptions")
