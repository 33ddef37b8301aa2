"""unmapped_records: listed records the field mapping could not read, kept to map again

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNRESOLVED = "resolved_at IS NULL"


def Timestamp() -> sa.DateTime:
    # timestamptz on PostgreSQL; naive UTC text on SQLite (see poller.adapters.sql.types).
    return sa.DateTime(timezone=True)


def BigIntId() -> sa.types.TypeEngine[int]:
    # SQLite only auto-increments an INTEGER PRIMARY KEY.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "unmapped_records",
        sa.Column("id", BigIntId(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("raw_sha256", sa.String(length=64), nullable=False),
        sa.Column("provider_call_id", sa.String(length=255), nullable=True),
        sa.Column("window_start", Timestamp(), nullable=False),
        sa.Column("window_end", Timestamp(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("first_seen_at", Timestamp(), nullable=False),
        sa.Column("last_seen_at", Timestamp(), nullable=False),
        sa.Column("times_seen", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("resolved_at", Timestamp(), nullable=True),
        sa.Column("resolved_call_id", BigIntId(), nullable=True),
        sa.CheckConstraint("times_seen >= 1", name=op.f("ck_unmapped_records_times_seen")),
        sa.ForeignKeyConstraint(
            ["resolved_call_id"],
            ["calls.id"],
            name=op.f("fk_unmapped_records_resolved_call_id_calls"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unmapped_records")),
        sa.UniqueConstraint(
            "provider", "raw_sha256", name=op.f("uq_unmapped_records_provider_raw_sha256")
        ),
    )
    op.create_index(
        "ix_unmapped_records_unresolved",
        "unmapped_records",
        ["provider", "id"],
        postgresql_where=sa.text(UNRESOLVED),
        sqlite_where=sa.text(UNRESOLVED),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_unmapped_records_unresolved",
        table_name="unmapped_records",
        postgresql_where=sa.text(UNRESOLVED),
        sqlite_where=sa.text(UNRESOLVED),
    )
    op.drop_table("unmapped_records")
