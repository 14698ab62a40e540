"""The local backend's storage: its collections (with their tags), users and face vectors, as
AWS keeps them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from facetrail.models.base import Base, Timestamped


class LocalCollection(Timestamped, Base):
    __tablename__ = "local_collections"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(128))
    # Bumped on every write, so per-process vector caches know when to reload.
    generation: Mapped[int] = mapped_column(default=0)
    # Rekognition's resource tags (CreateCollection, TagResource): key -> value.
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class LocalUser(Timestamped, Base):
    """A user (Rekognition's Users API): a person whose faces are searched as one."""

    __tablename__ = "local_users"

    collection_name: Mapped[str] = mapped_column(
        ForeignKey("local_collections.name", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)


class LocalFace(Timestamped, Base):
    __tablename__ = "local_faces"
    __table_args__ = (Index("ix_local_faces_collection_model", "collection_name", "model_version"),)

    face_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    collection_name: Mapped[str] = mapped_column(
        ForeignKey("local_collections.name", ondelete="CASCADE")
    )
    external_id: Mapped[str | None] = mapped_column(String(255))
    model_version: Mapped[str] = mapped_column(String(128))
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    box_left: Mapped[float]
    box_top: Mapped[float]
    box_width: Mapped[float]
    box_height: Mapped[float]
    confidence: Mapped[float]
    image_sha256: Mapped[str | None] = mapped_column(String(64))
    # The user this face is associated with (AssociateFaces), if any.
    user_id: Mapped[str | None] = mapped_column(String(128))


class LocalFaceChange(Base):
    """One face added to or removed from a collection, at the generation that did it.

    Written in the same transaction as the change, so each worker's in-memory index applies the
    deltas since the generation it last saw instead of reloading the collection.
    """

    __tablename__ = "local_face_changes"
    __table_args__ = (
        Index("ix_local_face_changes_collection_generation", "collection_name", "generation"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_name: Mapped[str] = mapped_column(
        ForeignKey("local_collections.name", ondelete="CASCADE")
    )
    generation: Mapped[int]
    face_id: Mapped[str] = mapped_column(String(64))
    added: Mapped[bool]
