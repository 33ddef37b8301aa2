"""calls.siro_create_sent_at (duplicate guard), poll_cursors.waiting_rechecked_at, waiting index

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = "state = 'pending' AND next_attempt_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("siro_create_sent_at", sa.DateTime(timezone=True)))
    with op.batch_alter_table("poll_cursors") as batch:
        batch.add_column(sa.Column("waiting_rechecked_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_calls_waiting",
        "calls",
        ["provider", "started_at"],
        postgresql_where=sa.text(WAITING),
        sqlite_where=sa.text(WAITING),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_calls_waiting",
        table_name="calls",
        postgresql_where=sa.text(WAITING),
        sqlite_where=sa.text(WAITING),
    )
    with op.batch_alter_table("poll_cursors") as batch:
        batch.drop_column("waiting_rechecked_at")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("siro_create_sent_at")
