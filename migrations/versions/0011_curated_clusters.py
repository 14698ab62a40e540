"""When a user last merged, split or named an unknown cluster (automatic splits leave it whole).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("unknown_clusters") as batch:
        batch.add_column(sa.Column("curated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("unknown_clusters") as batch:
        batch.drop_column("curated_at")
