"""retention: pruned_at on calls, re-mapping back-off and expiry on unmapped_records

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in poller.adapters.sql.models, word for word: SQLite only uses a partial index whose WHERE
# it finds in the query's own terms.
PRUNABLE_CALLS_SQL = "pruned_at IS NULL AND state NOT IN ('pending', 'downloaded')"
PRUNABLE_EVENTS_SQL = (
    "step NOT IN ('replay', 'forget', 'source_delete') AND NOT (step = 'upload' AND "
    "outcome IN ('adopted', 'create_refused', 'create_sent', 'ok'))"
)
LIVE_UNMAPPED_SQL = "resolved_at IS NULL AND expired_at IS NULL"
DONE_UNMAPPED_SQL = "(resolved_at IS NOT NULL OR expired_at IS NOT NULL)"
EXPIRED_UNMAPPED_SQL = "expired_at IS NOT NULL"


def Timestamp() -> sa.DateTime:
    # timestamptz on PostgreSQL; naive UTC text on SQLite (see poller.adapters.sql.types).
    return sa.DateTime(timezone=True)


def _partial(name: str, table: str, columns: list[str], where: str) -> None:
    op.create_index(
        name,
        table,
        columns,
        postgresql_where=sa.text(where),
        sqlite_where=sa.text(where),
    )


def upgrade() -> None:
    # Plain ADD COLUMNs (nullable, or with a constant default): no table rewrite on either
    # backend, so the upgrade of a large database is quick.
    op.add_column("calls", sa.Column("pruned_at", Timestamp(), nullable=True))
    op.add_column(
        "unmapped_records",
        sa.Column("remap_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("unmapped_records", sa.Column("next_remap_at", Timestamp(), nullable=True))
    op.add_column("unmapped_records", sa.Column("expired_at", Timestamp(), nullable=True))
    op.add_column("unmapped_records", sa.Column("expired_reason", sa.Text(), nullable=True))
    _partial("ix_calls_prunable", "calls", ["updated_at"], PRUNABLE_CALLS_SQL)
    _partial("ix_call_events_prunable", "call_events", ["at"], PRUNABLE_EVENTS_SQL)
    _partial(
        "ix_unmapped_records_live",
        "unmapped_records",
        ["provider", "id", "next_remap_at", "remap_attempts", "first_seen_at"],
        LIVE_UNMAPPED_SQL,
    )
    _partial(
        "ix_unmapped_records_done",
        "unmapped_records",
        ["last_seen_at", "expired_at"],
        DONE_UNMAPPED_SQL,
    )
    _partial("ix_unmapped_records_expired", "unmapped_records", ["provider"], EXPIRED_UNMAPPED_SQL)
    # The foreign key's child side, which SQLite reads on every UPDATE naming a calls id.
    op.create_index(
        "ix_unmapped_records_resolved_call_id", "unmapped_records", ["resolved_call_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_unmapped_records_resolved_call_id", table_name="unmapped_records")
    op.drop_index("ix_unmapped_records_expired", table_name="unmapped_records")
    op.drop_index("ix_unmapped_records_done", table_name="unmapped_records")
    op.drop_index("ix_unmapped_records_live", table_name="unmapped_records")
    op.drop_index("ix_call_events_prunable", table_name="call_events")
    op.drop_index("ix_calls_prunable", table_name="calls")
    with op.batch_alter_table("unmapped_records") as batch:
        batch.drop_column("expired_reason")
        batch.drop_column("expired_at")
        batch.drop_column("next_remap_at")
        batch.drop_column("remap_attempts")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("pruned_at")
