from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from facetrail.models.base import Base, Timestamped


class JobKind(enum.StrEnum):
    ENROLL = "enroll"
    IDENTIFY = "identify"
    REINDEX = "reindex"
    TAG = "tag"


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # finished, some items failed
    FAILED = "failed"  # finished, every item failed

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.PARTIAL, JobStatus.FAILED)


class ItemStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def _enum(cls: type[enum.StrEnum], name: str) -> Enum:
    # Stored as plain strings with a CHECK constraint: portable across SQLite and PostgreSQL.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda e: [m.value for m in e],
    )


class Job(Timestamped, Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[JobKind] = mapped_column(_enum(JobKind, "job_kind"))
    status: Mapped[JobStatus] = mapped_column(
        _enum(JobStatus, "job_status"), default=JobStatus.PENDING, index=True
    )
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    backend: Mapped[str] = mapped_column(String(32))
    model_version: Mapped[str] = mapped_column(String(128), default="")
    collection_id: Mapped[int | None] = mapped_column(
        ForeignKey("collections.id", ondelete="SET NULL"), index=True
    )
    collection_version: Mapped[int | None]
    # Set by apps that submit through the ``facetrail.submit`` task: resubmitting is a no-op.
    request_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # A re-run is a new identify job over the same images, linked to the job it repeats.
    rerun_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), index=True
    )
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    total_items: Mapped[int] = mapped_column(default=0)
    succeeded_items: Mapped[int] = mapped_column(default=0)
    failed_items: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # A job run in-process (no broker): "host:pid" of the process running it, and when it last
    # finished an item. A runner that is gone leaves the job interrupted (shown, resumable).
    runner: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None]

    items: Mapped[list[JobItem]] = relationship(
        back_populates="job",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="JobItem.position",
    )


class JobItem(Base):
    """One image of a job. (job_id, position) is the idempotency key tasks run under."""

    __tablename__ = "job_items"
    __table_args__ = (UniqueConstraint("job_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    source: Mapped[str] = mapped_column(Text)
    # Enrollment items say whom the image shows.
    person_external_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[ItemStatus] = mapped_column(
        _enum(ItemStatus, "item_status"), default=ItemStatus.PENDING
    )
    image_id: Mapped[int | None] = mapped_column(
        ForeignKey("images.id", ondelete="SET NULL"), index=True
    )
    error_code: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    # When a fan-out sent this item to the workers; set in the transaction that sends it, so a
    # redelivered fan-out never sends it again (a resume clears it for unfinished items).
    queued_at: Mapped[datetime | None]
    # Seconds spent on failed fetches over all attempts (FACETRAIL_FETCH_ITEM_BUDGET).
    fetch_seconds: Mapped[float] = mapped_column(default=0.0)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    job: Mapped[Job] = relationship(back_populates="items")
    faces: Mapped[list[FaceResult]] = relationship(
        back_populates="item",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="FaceResult.face_index",
    )
    tags: Mapped[list[TagResult]] = relationship(
        back_populates="item",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="TagResult.op",
    )


class FaceResult(Base):
    """A face found by an identification item: where, who (or nobody), and the runners-up."""

    __tablename__ = "face_results"
    __table_args__ = (UniqueConstraint("job_item_id", "face_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_item_id: Mapped[int] = mapped_column(
        ForeignKey("job_items.id", ondelete="CASCADE"), index=True
    )
    face_index: Mapped[int]
    box_left: Mapped[float]
    box_top: Mapped[float]
    box_width: Mapped[float]
    box_height: Mapped[float]
    confidence: Mapped[float]
    # The detector's quality figures (0-100), where the backend gives them: unknown faces too
    # blurry or dark to trust are kept out of clusters (services/unknowns.py).
    brightness: Mapped[float | None]
    sharpness: Mapped[float | None]
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id", ondelete="SET NULL"), index=True
    )
    # Kept so results stay readable after a person is renamed or deleted.
    person_external_id: Mapped[str | None] = mapped_column(String(255))
    similarity: Mapped[float | None]
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The face's embedding, so a re-run with an unchanged model skips detection and embedding.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    model_version: Mapped[str | None] = mapped_column(String(128))
    # Rekognition's FaceDetail attribute members (AgeRange, Gender, Emotions...) when the job
    # asked for them.
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    item: Mapped[JobItem] = relationship(back_populates="faces")


class TagResult(Base):
    """One operation's answer for one image of a tag job, in Rekognition's response shape."""

    __tablename__ = "tag_results"
    __table_args__ = (UniqueConstraint("job_item_id", "op"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_item_id: Mapped[int] = mapped_column(
        ForeignKey("job_items.id", ondelete="CASCADE"), index=True
    )
    op: Mapped[str] = mapped_column(String(16))
    payload: Mapped[Any] = mapped_column(JSON)

    item: Mapped[JobItem] = relationship(back_populates="tags")
