"""Renaming, merging and deleting people. Deleting erases the biometric data, not the history.

Each function works in the caller's session (one unit of work) and bumps the collection's version.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from facetrail.backends import backend_for
from facetrail.errors import InvalidParameterError, NotFoundError
from facetrail.models import Collection, Face, FaceResult, Person
from facetrail.services import audit
from facetrail.services.records import bump_version, get_collection
from facetrail.settings import Settings


def _person(session: Session, collection: Collection, external_id: str) -> Person:
    person = session.scalar(
        select(Person).where(
            Person.collection_id == collection.id, Person.external_id == external_id
        )
    )
    if person is None:
        raise NotFoundError(f"no person {external_id!r} in collection {collection.name!r}")
    return person


def rename(
    session: Session,
    settings: Settings,
    collection_name: str,
    external_id: str,
    *,
    new_external_id: str | None = None,
    display_name: str | None = None,
) -> dict[str, Any]:
    collection = get_collection(session, collection_name)
    person = _person(session, collection, external_id)
    if new_external_id and new_external_id != external_id:
        taken = session.scalar(
            select(Person.id).where(
                Person.collection_id == collection.id, Person.external_id == new_external_id
            )
        )
        if taken is not None:
            raise InvalidParameterError(
                f"{new_external_id!r} already exists in {collection_name!r}; merge instead"
            )
        person.external_id = new_external_id
    if display_name:
        person.display_name = display_name
    bump_version(session, collection, people=[person.id])
    audit.record(
        session,
        settings,
        "rename",
        collection,
        person=external_id,
        external_id=person.external_id,
        display_name=person.display_name,
    )
    return {"external_id": person.external_id, "display_name": person.display_name}


def set_urls(
    session: Session, settings: Settings, collection_name: str, external_id: str, urls: list[str]
) -> dict[str, Any]:
    """Links reported with a public figure's matches (RecognizeCelebrities' Urls)."""
    collection = get_collection(session, collection_name)
    person = _person(session, collection, external_id)
    person.urls = list(urls)
    audit.record(session, settings, "set_urls", collection, person=external_id, urls=urls)
    return {"external_id": external_id, "urls": person.urls}


def merge(
    session: Session, settings: Settings, collection_name: str, source_id: str, target_id: str
) -> dict[str, Any]:
    """Fold ``source_id`` into ``target_id``: one person with both sets of faces."""
    if source_id == target_id:
        raise InvalidParameterError("cannot merge a person into themselves")
    collection = get_collection(session, collection_name)
    source = _person(session, collection, source_id)
    target = _person(session, collection, target_id)
    moved = session.scalar(select(func.count()).where(Face.person_id == source.id)) or 0
    session.execute(update(Face).where(Face.person_id == source.id).values(person_id=target.id))
    # Past results that named the source now point at the merged person; their recorded
    # name stays what it was at the time.
    session.execute(
        update(FaceResult).where(FaceResult.person_id == source.id).values(person_id=target.id)
    )
    session.delete(source)
    bump_version(session, collection, people=[source.id, target.id])
    audit.record(
        session, settings, "merge", collection, source=source_id, target=target_id, faces=moved
    )
    return {"merged": source_id, "into": target_id, "faces_moved": moved}


def delete(
    session: Session, settings: Settings, collection_name: str, external_id: str
) -> dict[str, Any]:
    """Remove a person's embeddings, crops and backend faces; results keep only the name."""
    collection = get_collection(session, collection_name)
    person = _person(session, collection, external_id)
    face_ids = list(
        session.scalars(
            select(Face.face_id).where(
                Face.person_id == person.id, Face.backend == collection.backend
            )
        )
    )
    backend, backend_collection = collection.backend, collection.backend_collection_id
    options = dict(collection.backend_options)
    # The backend copy goes first: if this fails, nothing is lost and the delete can be retried.
    if face_ids:
        backend_for(settings, backend, options).delete_faces(backend_collection, face_ids)
    session.execute(
        update(FaceResult)
        .where(FaceResult.person_id == person.id)
        .values(embedding=None, person_id=None)
    )
    faces = session.scalars(select(Face).where(Face.person_id == person.id)).all()
    for face in faces:
        session.delete(face)
    session.delete(person)
    bump_version(session, collection, people=[person.id])
    audit.record(
        session, settings, "delete_person", collection, person=external_id, faces=len(faces)
    )
    return {"deleted": external_id, "faces_deleted": len(faces)}
