"""credential_pauses and worker_heartbeats: a credential problem pauses the work; workers report

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def Timestamp() -> sa.DateTime:
    # timestamptz on PostgreSQL; naive UTC text on SQLite (see poller.adapters.sql.types).
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "credential_pauses",
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("since", Timestamp(), nullable=False),
        sa.Column("last_probe_at", Timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_credential_pauses")),
    )
    op.create_table(
        "worker_heartbeats",
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("started_at", Timestamp(), nullable=False),
        sa.Column("beat_at", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("owner", name=op.f("pk_worker_heartbeats")),
    )


def downgrade() -> None:
    op.drop_table("worker_heartbeats")
    op.drop_table("credential_pauses")
