"""ix_calls_due holds only unleased workable rows, in claim order (next_attempt_at, id)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_DUE = "state IN ('pending', 'downloaded')"
NEW_DUE = "state IN ('pending', 'downloaded') AND lease_owner IS NULL"


def upgrade() -> None:
    op.drop_index("ix_calls_due", table_name="calls")
    op.create_index(
        "ix_calls_due",
        "calls",
        ["next_attempt_at", "id"],
        postgresql_where=sa.text(NEW_DUE),
        sqlite_where=sa.text(NEW_DUE),
    )


def downgrade() -> None:
    op.drop_index("ix_calls_due", table_name="calls")
    op.create_index(
        "ix_calls_due",
        "calls",
        ["next_attempt_at"],
        postgresql_where=sa.text(OLD_DUE),
        sqlite_where=sa.text(OLD_DUE),
    )
