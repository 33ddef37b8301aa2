"""siro_users (Siro's users as last synced), calls.attribution (how the rep was found)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def Timestamp() -> sa.DateTime:
    # timestamptz on PostgreSQL; naive UTC text on SQLite (see poller.adapters.sql.types).
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "siro_users",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("email_lower", sa.String(length=320), nullable=True),
        sa.Column("phone_number", sa.String(length=64), nullable=True),
        sa.Column("phone_e164", sa.String(length=32), nullable=True),
        sa.Column("first_name", sa.String(length=255), nullable=True),
        sa.Column("last_name", sa.String(length=255), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("organization_id", sa.String(length=128), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("synced_at", Timestamp(), nullable=False),
        sa.Column("missing_since", Timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_siro_users")),
    )
    op.create_index("ix_siro_users_email_lower", "siro_users", ["email_lower"])
    op.create_index("ix_siro_users_phone_e164", "siro_users", ["phone_e164"])
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("attribution", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("attribution")
    op.drop_index("ix_siro_users_phone_e164", table_name="siro_users")
    op.drop_index("ix_siro_users_email_lower", table_name="siro_users")
    op.drop_table("siro_users")
