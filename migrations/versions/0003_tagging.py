"""Tag jobs: per-operation results, public-figure collections, people's links.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 22:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS_BEFORE = ("enroll", "identify", "reindex")
KINDS_AFTER = ("enroll", "identify", "reindex", "tag")


def _kind_check(kinds: tuple[str, ...]) -> str:
    return "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"


def upgrade() -> None:
    op.create_table(
        "tag_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_item_id", sa.Integer(), nullable=False),
        sa.Column("op", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_item_id"],
            ["job_items.id"],
            name=op.f("fk_tag_results_job_item_id_job_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tag_results")),
        sa.UniqueConstraint("job_item_id", "op", name=op.f("uq_tag_results_job_item_id_op")),
    )
    with op.batch_alter_table("tag_results", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tag_results_job_item_id"), ["job_item_id"], unique=False
        )

    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("public_figures", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("urls", sa.JSON()))
    op.execute("UPDATE people SET urls = '[]'")
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.alter_column("urls", existing_type=sa.JSON(), nullable=False)

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_jobs_job_kind"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_jobs_job_kind"), _kind_check(KINDS_AFTER))


def downgrade() -> None:
    op.execute("DELETE FROM jobs WHERE kind = 'tag'")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_jobs_job_kind"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_jobs_job_kind"), _kind_check(KINDS_BEFORE))

    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_column("urls")

    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_column("public_figures")

    with op.batch_alter_table("tag_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tag_results_job_item_id"))

    op.drop_table("tag_results")
