"""History rows keep the Triton round trip, and are found by model and time.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

A release's verdict (``gateway.release_figures``) compares the two versions' p50/p99 of what
Triton took (``upstream_ms``), not of the whole request: a shadow answer has no request of its
own, and a cache hit says nothing of a version's speed. The verdict reads one model's rows
since the release started, hence the index.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``upstream_ms`` and the (model, created_at) index."""
    with op.batch_alter_table("classifications") as table:
        table.add_column(sa.Column("upstream_ms", sa.Float(), nullable=True))
    op.create_index("ix_classifications_model_created", "classifications", ["model", "created_at"])


def downgrade() -> None:
    """Drop both."""
    op.drop_index("ix_classifications_model_created", table_name="classifications")
    with op.batch_alter_table("classifications") as table:
        table.drop_column("upstream_ms")
