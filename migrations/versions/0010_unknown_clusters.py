"""Unknown faces and their clusters; the detector's quality figures on identification results.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _status(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    with op.batch_alter_table("face_results") as batch:
        batch.add_column(sa.Column("brightness", sa.Float(), nullable=True))
        batch.add_column(sa.Column("sharpness", sa.Float(), nullable=True))
    op.create_table(
        "unknown_clusters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("model_version", sa.String(length=128), nullable=False),
        sa.Column(
            "status",
            _status("cluster_status", "open", "naming", "named", "merged", "erased"),
            nullable=False,
        ),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("centroid", sa.LargeBinary(), nullable=True),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("person_external_id", sa.String(length=255), nullable=True),
        sa.Column("name_job_id", sa.Integer(), nullable=True),
        sa.Column("merged_into_id", sa.Integer(), nullable=True),
        sa.Column("split_from_id", sa.Integer(), nullable=True),
        sa.Column("sheet_sha256", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_unknown_clusters_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_unknown_clusters_person_id_people"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["name_job_id"],
            ["jobs.id"],
            name=op.f("fk_unknown_clusters_name_job_id_jobs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["merged_into_id"],
            ["unknown_clusters.id"],
            name=op.f("fk_unknown_clusters_merged_into_id_unknown_clusters"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["split_from_id"],
            ["unknown_clusters.id"],
            name=op.f("fk_unknown_clusters_split_from_id_unknown_clusters"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unknown_clusters")),
    )
    op.create_index(
        op.f("ix_unknown_clusters_collection_id"), "unknown_clusters", ["collection_id"]
    )
    op.create_index(op.f("ix_unknown_clusters_person_id"), "unknown_clusters", ["person_id"])
    op.create_table(
        "unknown_faces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("face_result_id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            _status("unknown_face_status", "pool", "clustered", "named", "excluded"),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("model_version", sa.String(length=128), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_unknown_faces_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["face_result_id"],
            ["face_results.id"],
            name=op.f("fk_unknown_faces_face_result_id_face_results"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["unknown_clusters.id"],
            name=op.f("fk_unknown_faces_cluster_id_unknown_clusters"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unknown_faces")),
        sa.UniqueConstraint("face_result_id", name=op.f("uq_unknown_faces_face_result_id")),
    )
    op.create_index(op.f("ix_unknown_faces_collection_id"), "unknown_faces", ["collection_id"])
    op.create_index(op.f("ix_unknown_faces_cluster_id"), "unknown_faces", ["cluster_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_unknown_faces_cluster_id"), table_name="unknown_faces")
    op.drop_index(op.f("ix_unknown_faces_collection_id"), table_name="unknown_faces")
    op.drop_table("unknown_faces")
    op.drop_index(op.f("ix_unknown_clusters_person_id"), table_name="unknown_clusters")
    op.drop_index(op.f("ix_unknown_clusters_collection_id"), table_name="unknown_clusters")
    op.drop_table("unknown_clusters")
    with op.batch_alter_table("face_results") as batch:
        batch.drop_column("sharpness")
        batch.drop_column("brightness")
