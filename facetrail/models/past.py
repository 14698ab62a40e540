"""Past faces (the faces identify jobs found, searchable) and corrections of their names."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from facetrail.models.base import Base, Timestamped


class PastFaceChange(Base):
    """One face result added to or removed from a collection's past faces, at the generation
    (``collections.past_generation``) that did it.

    Written in the transaction that adds the results (an identify item, a re-run) or removes
    their embeddings (an erasure), so each process's past-faces index applies the deltas since
    the generation it last saw instead of reloading (``facetrail.vectors.logged``).
    """

    __tablename__ = "past_face_changes"
    __table_args__ = (
        Index("ix_past_face_changes_collection_generation", "collection_id", "generation"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    generation: Mapped[int]
    # No foreign key: the change outlives the result it names.
    face_result_id: Mapped[int]
    added: Mapped[bool]


class CorrectionKind(enum.StrEnum):
    IS = "is"  # the face is this person: named so, whatever the scores say
    NOT = "not"  # the face is not this person: never named so


class Correction(Timestamped, Base):
    """A person's word on one face of one photo, honoured by every identify job and re-run.

    The face is the photo (``image_id``) and the box: the same face in another job of the same
    photo (a re-run, a second identify job) is the box that overlaps it most, by at least half.
    A withdrawn correction stays as a record but no longer applies.
    """

    __tablename__ = "corrections"
    __table_args__ = (Index("ix_corrections_collection_image", "collection_id", "image_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    box_left: Mapped[float]
    box_top: Mapped[float]
    box_width: Mapped[float]
    box_height: Mapped[float]
    kind: Mapped[CorrectionKind] = mapped_column(
        Enum(
            CorrectionKind,
            name="correction_kind",
            native_enum=False,
            create_constraint=True,
            length=8,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    # Whom it is about; erasing the person erases their corrections.
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    # The result it was made on (kept for the record; the face is image and box).
    face_result_id: Mapped[int | None] = mapped_column(
        ForeignKey("face_results.id", ondelete="SET NULL")
    )
    actor: Mapped[str] = mapped_column(String(255))
    # "is": the enrollment job that added the face to the person, if one was made.
    enroll_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    withdrawn_at: Mapped[datetime | None]
    withdrawn_by: Mapped[str | None] = mapped_column(String(255))
