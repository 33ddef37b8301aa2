"""backfill_runs: past ranges listed by `siro-poller backfill`, resumable, apart from the cursor

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def Timestamp() -> sa.DateTime:
    # timestamptz on PostgreSQL; naive UTC text on SQLite (see poller.adapters.sql.types).
    return sa.DateTime(timezone=True)


def BigIntId() -> sa.types.TypeEngine[int]:
    # SQLite only auto-increments an INTEGER PRIMARY KEY.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "backfill_runs",
        sa.Column("id", BigIntId(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("since", Timestamp(), nullable=False),
        sa.Column("until", Timestamp(), nullable=False),
        sa.Column("listed_until", Timestamp(), nullable=False),
        sa.Column("windows", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("listed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("new_calls", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("known", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("unmapped", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("started_at", Timestamp(), nullable=False),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.Column("finished_at", Timestamp(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint("since < until", name=op.f("ck_backfill_runs_range")),
        sa.CheckConstraint(
            "listed_until >= since AND listed_until <= until",
            name=op.f("ck_backfill_runs_listed_until"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backfill_runs")),
    )
    op.create_index(
        "ix_backfill_runs_provider_since_until",
        "backfill_runs",
        ["provider", "since", "until"],
    )


def downgrade() -> None:
    op.drop_index("ix_backfill_runs_provider_since_until", table_name="backfill_runs")
    op.drop_table("backfill_runs")
