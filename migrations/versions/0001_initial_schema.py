"""initial schema: calls, call_events, poll_cursors

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Auditors query these tables directly; see the README for the meaning of each column.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
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
        "calls",
        sa.Column("id", BigIntId(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("provider_call_id", sa.String(length=255), nullable=False),
        sa.Column(
            "state", sa.String(length=16), server_default=sa.text("'pending'"), nullable=False
        ),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", Timestamp(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("error_kind", sa.String(length=64), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", Timestamp(), nullable=True),
        sa.Column("recording_id", sa.String(length=255), nullable=True),
        sa.Column("recording_state", sa.String(length=16), nullable=True),
        sa.Column("started_at", Timestamp(), nullable=True),
        sa.Column("ended_at", Timestamp(), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("direction", sa.String(length=16), nullable=True),
        sa.Column("rep_email", sa.String(length=320), nullable=True),
        sa.Column("rep_phone", sa.String(length=64), nullable=True),
        sa.Column("rep_provider_id", sa.String(length=255), nullable=True),
        sa.Column("rep_name", sa.String(length=255), nullable=True),
        sa.Column("rep_extension", sa.String(length=64), nullable=True),
        sa.Column("siro_user_id", sa.String(length=128), nullable=True),
        sa.Column("contact_name", sa.String(length=255), nullable=True),
        sa.Column("contact_phone", sa.String(length=64), nullable=True),
        sa.Column("title", sa.String(length=500), nullable=True),
        sa.Column("recording_url", sa.Text(), nullable=True),
        sa.Column("audio_format", sa.String(length=8), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("spool_path", sa.Text(), nullable=True),
        sa.Column("siro_file_url", sa.Text(), nullable=True),
        sa.Column("siro_recording_id", sa.String(length=128), nullable=True),
        sa.Column("uploaded_at", Timestamp(), nullable=True),
        sa.Column("raw", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True),
        sa.Column("created_at", Timestamp(), nullable=False),
        sa.Column("updated_at", Timestamp(), nullable=False),
        sa.CheckConstraint(
            "direction IS NULL OR direction IN ('inbound', 'outbound')",
            name=op.f("ck_calls_direction"),
        ),
        sa.CheckConstraint(
            "recording_state IS NULL OR recording_state IN ('ready', 'pending', 'none')",
            name=op.f("ck_calls_recording_state"),
        ),
        sa.CheckConstraint(
            "state <> 'uploaded' OR (siro_recording_id IS NOT NULL AND uploaded_at IS NOT NULL)",
            name=op.f("ck_calls_uploaded_has_recording"),
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'downloaded', 'uploaded', 'failed', 'skipped')",
            name=op.f("ck_calls_state"),
        ),
        sa.CheckConstraint(
            "(lease_owner IS NULL) = (lease_expires_at IS NULL)", name=op.f("ck_calls_lease_pair")
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_calls_attempts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint(
            "provider", "provider_call_id", name=op.f("uq_calls_provider_provider_call_id")
        ),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index(
            "ix_calls_due",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("state IN ('pending', 'downloaded')"),
            sqlite_where=sa.text("state IN ('pending', 'downloaded')"),
        )
        batch_op.create_index(
            "ix_calls_leased",
            ["lease_expires_at"],
            unique=False,
            postgresql_where=sa.text("lease_owner IS NOT NULL"),
            sqlite_where=sa.text("lease_owner IS NOT NULL"),
        )
        batch_op.create_index("ix_calls_started_at", ["started_at"], unique=False)
        batch_op.create_index("ix_calls_state_updated_at", ["state", "updated_at"], unique=False)

    op.create_table(
        "poll_cursors",
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("cursor_value", Timestamp(), nullable=True),
        sa.Column("last_polled_at", Timestamp(), nullable=True),
        sa.Column("last_success_at", Timestamp(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", Timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_poll_cursors")),
    )
    op.create_table(
        "call_events",
        sa.Column("id", BigIntId(), autoincrement=True, nullable=False),
        sa.Column("call_id", BigIntId(), nullable=False),
        sa.Column("at", Timestamp(), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=True),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_call_events_call_id_calls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_events")),
    )
    with op.batch_alter_table("call_events", schema=None) as batch_op:
        batch_op.create_index("ix_call_events_at", ["at"], unique=False)
        batch_op.create_index("ix_call_events_call_id_id", ["call_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("call_events", schema=None) as batch_op:
        batch_op.drop_index("ix_call_events_call_id_id")
        batch_op.drop_index("ix_call_events_at")

    op.drop_table("call_events")
    op.drop_table("poll_cursors")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_state_updated_at")
        batch_op.drop_index("ix_calls_started_at")
        batch_op.drop_index(
            "ix_calls_leased",
            postgresql_where=sa.text("lease_owner IS NOT NULL"),
            sqlite_where=sa.text("lease_owner IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_calls_due",
            postgresql_where=sa.text("state IN ('pending', 'downloaded')"),
            sqlite_where=sa.text("state IN ('pending', 'downloaded')"),
        )

    op.drop_table("calls")
