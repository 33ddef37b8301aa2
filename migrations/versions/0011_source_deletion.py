"""source_deletions and source_deletion_pauses: opt-in deletion of recordings at the source

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def Timestamp() -> sa.DateTime:
    # timestamptz on PostgreSQL; naive UTC text on SQLite (see poller.adapters.sql.types).
    return sa.DateTime(timezone=True)


def BigIntId() -> sa.types.TypeEngine[int]:
    # SQLite only auto-increments an INTEGER PRIMARY KEY.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


DUE_SQL = "state = 'pending'"


def upgrade() -> None:
    op.create_table(
        "source_deletions",
        sa.Column("call_id", BigIntId(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", Timestamp(), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", Timestamp(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("deleted_at", Timestamp(), nullable=True),
        sa.Column("created_at", Timestamp(), nullable=False),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.CheckConstraint(
            "state IN ('pending', 'deleted', 'refused', 'failed')",
            name=op.f("ck_source_deletions_state"),
        ),
        sa.CheckConstraint(
            "(lease_owner IS NULL) = (lease_expires_at IS NULL)",
            name=op.f("ck_source_deletions_lease_pair"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_source_deletions_attempts")),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_source_deletions_call_id_calls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_source_deletions")),
    )
    op.create_index(
        "ix_source_deletions_due",
        "source_deletions",
        ["next_attempt_at", "call_id"],
        postgresql_where=sa.text(DUE_SQL),
        sqlite_where=sa.text(DUE_SQL),
    )
    op.create_table(
        "source_deletion_pauses",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("since", Timestamp(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_source_deletion_pauses")),
    )


def downgrade() -> None:
    op.drop_table("source_deletion_pauses")
    op.drop_index("ix_source_deletions_due", table_name="source_deletions")
    op.drop_table("source_deletions")
