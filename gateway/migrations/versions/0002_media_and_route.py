"""History rows say what was classified (a video's frames and duration) and why a version answered.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

All three columns are nullable so that rows written before this revision stay valid: an image
request has no ``frames``/``duration_s``, and a row without ``route`` was answered by the one
published version.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``frames``, ``duration_s`` and ``route`` to ``classifications``."""
    with op.batch_alter_table("classifications") as table:
        table.add_column(sa.Column("frames", sa.Integer(), nullable=True))
        table.add_column(sa.Column("duration_s", sa.Float(), nullable=True))
        table.add_column(sa.Column("route", sa.String(16), nullable=True))


def downgrade() -> None:
    """Drop the three columns."""
    with op.batch_alter_table("classifications") as table:
        table.drop_column("route")
        table.drop_column("duration_s")
        table.drop_column("frames")
