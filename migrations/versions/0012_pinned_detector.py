"""Local collections pin their face detector beside their embedder (``backend_options``).

Collections made before record only the embedder; their detector is read off the detector part
of their model version, so workers keep searching them with the detector they were built with
whatever ``FACETRAIL_DETECTOR`` says.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 22:10:00
"""

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The detector part of a local model version -> the detector's name (Settings.detector), as of
# this revision.
DETECTOR_VERSIONS = {
    "mtcnn-tflite": "mtcnn",
    "retinaface-mnet025": "retinaface",
    "retinaface-onet": "retinaface-onet",
}

collections = sa.table(
    "collections",
    sa.column("id", sa.Integer),
    sa.column("backend", sa.String),
    sa.column("backend_options", sa.JSON),
    sa.column("model_version", sa.String),
)


def _rewrite(change: Callable[[dict[str, Any], str], bool]) -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(
            collections.c.id, collections.c.backend_options, collections.c.model_version
        ).where(collections.c.backend == "local")
    ).all()
    for row in rows:
        options = dict(row.backend_options or {})
        if change(options, row.model_version or ""):
            conn.execute(
                collections.update()
                .where(collections.c.id == row.id)
                .values(backend_options=options)
            )


def _pin(options: dict[str, Any], model_version: str) -> bool:
    name = DETECTOR_VERSIONS.get(model_version.split("/", 1)[0])
    if "detector" in options or name is None:
        return False
    options["detector"] = name
    return True


def _unpin(options: dict[str, Any], model_version: str) -> bool:
    return options.pop("detector", None) is not None


def upgrade() -> None:
    _rewrite(_pin)


def downgrade() -> None:
    _rewrite(_unpin)
