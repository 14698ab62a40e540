"""Our record of enrolled faces, whichever backend holds the searchable copy."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from facetrail.backends.base import Backend, IndexedFace, IndexResult
from facetrail.backends.local.vectors import to_blob
from facetrail.models import Collection, Face, Person


def upsert_face(
    session: Session,
    *,
    backend: str,
    model_version: str,
    collection: Collection,
    person: Person,
    indexed: IndexedFace,
    image_id: int | None,
    item_id: int | None,
) -> Face:
    row = session.scalar(
        select(Face).where(Face.backend == backend, Face.face_id == indexed.face_id)
    )
    if row is None:
        row = Face(face_id=indexed.face_id, backend=backend)
        session.add(row)
    face = indexed.face
    row.collection_id = collection.id
    row.person_id = person.id
    row.model_name = model_version.split("@", 1)[0]
    row.model_version = model_version
    row.embedding = None if indexed.embedding is None else to_blob(indexed.embedding)
    row.box_left, row.box_top = face.box.left, face.box.top
    row.box_width, row.box_height = face.box.width, face.box.height
    row.confidence = face.confidence
    row.brightness = face.quality.brightness if face.quality else None
    row.sharpness = face.quality.sharpness if face.quality else None
    row.image_id = image_id
    row.image_sha256 = indexed.image_sha256
    row.crop_jpeg = indexed.crop_jpeg
    sex = face.attributes.gender if face.attributes is not None else None
    row.gender = sex.value if sex is not None else None
    row.gender_confidence = sex.confidence if sex is not None else None
    row.job_item_id = item_id
    return row


def record_indexed(
    session: Session,
    backend: Backend,
    result: IndexResult,
    *,
    collection: Collection,
    person: Person,
    image_id: int | None,
    item_id: int | None,
) -> list[Face]:
    """Our records of the faces ``backend`` just indexed for ``person``."""
    return [
        upsert_face(
            session,
            backend=backend.name,
            model_version=backend.model_version,
            collection=collection,
            person=person,
            indexed=indexed,
            image_id=image_id,
            item_id=item_id,
        )
        for indexed in result.indexed
    ]
