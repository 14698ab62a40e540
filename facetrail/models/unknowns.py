"""Unknown faces and their clusters (``facetrail.services.unknowns``).

A face that an identify job left unnamed is recorded once, as an :class:`UnknownFace` that
points at its result (the embedding, box and job stay there, never copied). Faces that look
like one person form an :class:`UnknownCluster`, shown as ``unknown-<id>``: the id is the row's,
so it stays with its faces as more arrive, and a cluster merged away or erased keeps its row
(a tombstone) so that its id is never given to another.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from facetrail.models.base import Base, Timestamped, utcnow
from facetrail.models.job import _enum


class ClusterStatus(enum.StrEnum):
    OPEN = "open"
    NAMING = "naming"  # its faces are being enrolled (name_job_id)
    NAMED = "named"  # enrolled as person_external_id
    MERGED = "merged"  # its faces went to merged_into_id
    ERASED = "erased"  # its faces' embeddings were erased


class UnknownFaceStatus(enum.StrEnum):
    POOL = "pool"  # waiting for enough faces like it to form a cluster
    CLUSTERED = "clustered"
    NAMED = "named"  # its cluster was named, or a re-run named it
    EXCLUDED = "excluded"  # too small, blurry or unsure to cluster (reason)


class UnknownCluster(Timestamped, Base):
    __tablename__ = "unknown_clusters"

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    # Embeddings of different models never share a cluster.
    model_version: Mapped[str] = mapped_column(String(128))
    status: Mapped[ClusterStatus] = mapped_column(
        _enum(ClusterStatus, "cluster_status"), default=ClusterStatus.OPEN
    )
    size: Mapped[int] = mapped_column(default=0)
    # The normalised mean of its faces' embeddings (finding candidate clusters for a face);
    # recomputed whenever its faces change, cleared when it has none.
    centroid: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Whom it was named as (the name is kept, as face results keep theirs).
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id", ondelete="SET NULL"), index=True
    )
    person_external_id: Mapped[str | None] = mapped_column(String(255))
    # The enrollment job that named it.
    name_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("unknown_clusters.id", ondelete="SET NULL")
    )
    split_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("unknown_clusters.id", ondelete="SET NULL")
    )
    # When a user last merged, split or named it (who: the audit log). What a user decided
    # stays: a curated cluster is never split automatically, nor merged with another curated
    # one; a cluster that takes one in by an automatic merge becomes curated.
    curated_at: Mapped[datetime | None] = mapped_column()
    # The last contact sheet a task wrote into the image store (erasure deletes it).
    sheet_sha256: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def label(self) -> str:
        return cluster_label(self.id)


def cluster_label(cluster_id: int) -> str:
    return f"unknown-{cluster_id}"


class UnknownFace(Base):
    __tablename__ = "unknown_faces"

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    # Each unnamed face of an identify job is considered once (a re-run's copies are not).
    face_result_id: Mapped[int] = mapped_column(
        ForeignKey("face_results.id", ondelete="CASCADE"), unique=True
    )
    cluster_id: Mapped[int | None] = mapped_column(
        ForeignKey("unknown_clusters.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[UnknownFaceStatus] = mapped_column(
        _enum(UnknownFaceStatus, "unknown_face_status")
    )
    # Why it was kept out of clusters: small, blurry, unsure, no_embedding.
    reason: Mapped[str | None] = mapped_column(String(32))
    model_version: Mapped[str] = mapped_column(String(128))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
