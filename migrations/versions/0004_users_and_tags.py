"""Rekognition's Users API and resource tags on the local backend's collections.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "local_users",
        sa.Column("collection_name", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_name"],
            ["local_collections.name"],
            name=op.f("fk_local_users_collection_name_local_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_name", "user_id", name=op.f("pk_local_users")),
    )
    with op.batch_alter_table("local_faces", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_id", sa.String(length=128), nullable=True))

    with op.batch_alter_table("local_collections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tags", sa.JSON()))
    op.execute("UPDATE local_collections SET tags = '{}'")
    with op.batch_alter_table("local_collections", schema=None) as batch_op:
        batch_op.alter_column("tags", existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("local_collections", schema=None) as batch_op:
        batch_op.drop_column("tags")
    with op.batch_alter_table("local_faces", schema=None) as batch_op:
        batch_op.drop_column("user_id")
    op.drop_table("local_users")
