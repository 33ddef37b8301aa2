"""calls: what the downloaded audio is (container, codec, duration, channels, sample rate)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("source_format", sa.String(length=32)),
    ("source_codec", sa.String(length=32)),
    ("audio_duration_seconds", sa.Float()),
    ("audio_channels", sa.Integer()),
    ("audio_sample_rate", sa.Integer()),
)


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        for name, _kind in reversed(COLUMNS):
            batch.drop_column(name)
