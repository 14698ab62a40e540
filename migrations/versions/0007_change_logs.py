"""Change logs for incremental vector indexes: local face changes and collection changes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 09:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "local_face_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_name", sa.String(length=255), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("face_id", sa.String(length=64), nullable=False),
        sa.Column("added", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_name"],
            ["local_collections.name"],
            name=op.f("fk_local_face_changes_collection_name_local_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_local_face_changes")),
    )
    op.create_index(
        "ix_local_face_changes_collection_generation",
        "local_face_changes",
        ["collection_name", "generation"],
    )
    op.create_table(
        "collection_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_collection_changes_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_changes")),
    )
    op.create_index(
        "ix_collection_changes_collection_version",
        "collection_changes",
        ["collection_id", "version"],
    )


def downgrade() -> None:
    op.drop_index("ix_collection_changes_collection_version", table_name="collection_changes")
    op.drop_table("collection_changes")
    op.drop_index("ix_local_face_changes_collection_generation", table_name="local_face_changes")
    op.drop_table("local_face_changes")
