"""Past faces searchable through a change log, and corrections of names.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.add_column(
            sa.Column("past_generation", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("has_corrections", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "past_face_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("face_result_id", sa.Integer(), nullable=False),
        sa.Column("added", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_past_face_changes_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_past_face_changes")),
    )
    op.create_index(
        "ix_past_face_changes_collection_generation",
        "past_face_changes",
        ["collection_id", "generation"],
    )
    op.create_table(
        "corrections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("box_left", sa.Float(), nullable=False),
        sa.Column("box_top", sa.Float(), nullable=False),
        sa.Column("box_width", sa.Float(), nullable=False),
        sa.Column("box_height", sa.Float(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "is",
                "not",
                name="correction_kind",
                native_enum=False,
                create_constraint=True,
                length=8,
            ),
            nullable=False,
        ),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("face_result_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("enroll_job_id", sa.Integer(), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_by", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_corrections_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_corrections_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_corrections_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["face_result_id"],
            ["face_results.id"],
            name=op.f("fk_corrections_face_result_id_face_results"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["enroll_job_id"],
            ["jobs.id"],
            name=op.f("fk_corrections_enroll_job_id_jobs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_corrections")),
    )
    op.create_index("ix_corrections_collection_image", "corrections", ["collection_id", "image_id"])
    op.create_index(op.f("ix_corrections_person_id"), "corrections", ["person_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_corrections_person_id"), table_name="corrections")
    op.drop_index("ix_corrections_collection_image", table_name="corrections")
    op.drop_table("corrections")
    op.drop_index("ix_past_face_changes_collection_generation", table_name="past_face_changes")
    op.drop_table("past_face_changes")
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("has_corrections")
        batch.drop_column("past_generation")
