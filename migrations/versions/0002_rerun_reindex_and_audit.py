"""Re-runs, re-indexing, submissions from other apps and the audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 21:11:58.673287
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS_BEFORE = ("enroll", "identify")
KINDS_AFTER = ("enroll", "identify", "reindex")


def _kind_check(kinds: tuple[str, ...]) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=True),
        sa.Column("collection_name", sa.String(length=255), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_audit_log_collection_id_collections"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_audit_log_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_log_collection_id"), ["collection_id"], unique=False
        )

    # Existing collections keep their name on the backend and the default embedder.
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backend_collection_id", sa.String(length=255)))
        batch_op.add_column(sa.Column("backend_options", sa.JSON()))
    op.execute(
        "UPDATE collections SET backend_collection_id = name,"
        ' backend_options = \'{"embedder": "mobilefacenet"}\''
    )
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.alter_column(
            "backend_collection_id", existing_type=sa.String(length=255), nullable=False
        )
        batch_op.alter_column("backend_options", existing_type=sa.JSON(), nullable=False)

    with op.batch_alter_table("face_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("embedding", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("model_version", sa.String(length=128), nullable=True))

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_jobs_request_id"), ["request_id"])
        batch_op.add_column(sa.Column("rerun_of_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_rerun_of_id"), ["rerun_of_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_jobs_rerun_of_id_jobs"),
            "jobs",
            ["rerun_of_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.drop_constraint(batch_op.f("ck_jobs_job_kind"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_jobs_job_kind"), _kind_check(KINDS_AFTER))


def downgrade() -> None:
    op.execute("DELETE FROM jobs WHERE kind = 'reindex'")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_jobs_job_kind"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_jobs_job_kind"), _kind_check(KINDS_BEFORE))
        batch_op.drop_constraint(batch_op.f("fk_jobs_rerun_of_id_jobs"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_jobs_rerun_of_id"))
        batch_op.drop_column("rerun_of_id")
        batch_op.drop_constraint(batch_op.f("uq_jobs_request_id"), type_="unique")
        batch_op.drop_column("request_id")

    with op.batch_alter_table("face_results", schema=None) as batch_op:
        batch_op.drop_column("model_version")
        batch_op.drop_column("embedding")

    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_column("backend_options")
        batch_op.drop_column("backend_collection_id")

    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_collection_id"))
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
