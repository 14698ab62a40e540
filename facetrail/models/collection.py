from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from facetrail.models.base import Base, Timestamped, utcnow
from facetrail.models.image import Image


class Collection(Timestamped, Base):
    """A named set of known people on one backend. ``version`` goes up on every change."""

    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    backend: Mapped[str] = mapped_column(String(32))
    # The collection's name on its backend; a re-index builds a new one and switches over.
    backend_collection_id: Mapped[str] = mapped_column(String(255))
    # Settings the backend needs to search this collection (e.g. the local embedder).
    backend_options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    model_version: Mapped[str] = mapped_column(String(128), default="")
    version: Mapped[int] = mapped_column(default=0)
    # People in it are public figures: tag jobs name them (RecognizeCelebrities).
    public_figures: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Bumped with every change to the faces its identify jobs found (``past_face_changes``), so
    # per-process past-faces indexes know when to apply deltas (``services/past.py``).
    past_generation: Mapped[int] = mapped_column(default=0, server_default="0")
    # Whether a correction was ever made in it (``services/corrections.py``): until then its
    # identify items and re-runs look none up.
    has_corrections: Mapped[bool] = mapped_column(default=False, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    people: Mapped[list[Person]] = relationship(
        back_populates="collection", cascade="all, delete-orphan", passive_deletes=True
    )


class CollectionChange(Base):
    """Whose faces or name changed at one version of a collection (no person: anything may have).

    Written by ``bump_version`` in the changing transaction; workers' person templates apply the
    changes since the version they hold instead of reloading every person.
    """

    __tablename__ = "collection_changes"
    __table_args__ = (
        Index("ix_collection_changes_collection_version", "collection_id", "version"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    version: Mapped[int]
    # No foreign key: the change outlives a deleted or merged person.
    person_id: Mapped[int | None]


class Person(Timestamped, Base):
    __tablename__ = "people"
    __table_args__ = (UniqueConstraint("collection_id", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    external_id: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(255))
    # Links about a public figure, reported with their matches (Rekognition's Urls).
    urls: Mapped[list[str]] = mapped_column(JSON, default=list)

    collection: Mapped[Collection] = relationship(back_populates="people")
    faces: Mapped[list[Face]] = relationship(
        back_populates="person", cascade="all, delete-orphan", passive_deletes=True
    )


class Face(Timestamped, Base):
    """An enrolled face: our record of it, whichever backend holds the searchable copy."""

    __tablename__ = "faces"
    __table_args__ = (
        UniqueConstraint("backend", "face_id"),
        Index("ix_faces_collection_model", "collection_id", "model_version"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    face_id: Mapped[str] = mapped_column(String(64))
    backend: Mapped[str] = mapped_column(String(32))
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(128))
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    box_left: Mapped[float]
    box_top: Mapped[float]
    box_width: Mapped[float]
    box_height: Mapped[float]
    confidence: Mapped[float]
    brightness: Mapped[float | None]
    sharpness: Mapped[float | None]
    image_id: Mapped[int | None] = mapped_column(
        ForeignKey("images.id", ondelete="SET NULL"), index=True
    )
    image_sha256: Mapped[str] = mapped_column(String(64))
    crop_jpeg: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The gender model's answer on this photo ("Male"/"Female", confidence 0-100): recorded for
    # public figures only, whose known gender is the verdict over their faces.
    gender: Mapped[str | None] = mapped_column(String(8))
    gender_confidence: Mapped[float | None]
    job_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("job_items.id", ondelete="SET NULL"), index=True
    )

    person: Mapped[Person] = relationship(back_populates="faces")
    image: Mapped[Image | None] = relationship()
