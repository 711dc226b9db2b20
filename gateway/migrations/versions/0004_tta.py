"""History rows say which test-time augmentation answered.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

``tta=hflip`` answers come from another pipeline (``<model>_hflip``) than plain ones, with other
probabilities; a row must say which, or an audit cannot tell the two apart. Nullable: every
earlier row, and every plain answer, has none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``tta``."""
    with op.batch_alter_table("classifications") as table:
        table.add_column(sa.Column("tta", sa.String(16), nullable=True))


def downgrade() -> None:
    """Drop it."""
    with op.batch_alter_table("classifications") as table:
        table.drop_column("tta")
