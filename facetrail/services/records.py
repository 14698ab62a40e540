"""Records shared by every job kind: get-or-create helpers that stay correct when two workers
race on the same row, and the one way a collection's version goes up."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facetrail.errors import CollectionNotFoundError, InvalidParameterError, NotFoundError
from facetrail.images import LoadedImage
from facetrail.models import Collection, CollectionChange, Image, Person
from facetrail.models.base import table, utcnow
from facetrail.vectors.snapshots import LOG_KEEP, PRUNE_EVERY

# Rekognition's CollectionId pattern, so a collection can move to any backend.
COLLECTION_NAME = re.compile(r"[a-zA-Z0-9_.\-]{1,255}")


def get_collection(session: Session, name: str) -> Collection:
    row = session.scalar(select(Collection).where(Collection.name == name))
    if row is None:
        raise CollectionNotFoundError(f"collection {name!r} does not exist")
    return row


def get_collection_by_id(session: Session, collection_id: int) -> Collection:
    row = session.get(Collection, collection_id)
    if row is None:
        raise CollectionNotFoundError(f"collection {collection_id} does not exist")
    return row


def bump_version(
    session: Session,
    collection: Collection,
    model_version: str | None = None,
    *,
    people: Iterable[int] | None = None,
) -> int:
    """Record that a collection changed (and, when given, the model its faces are indexed with).

    Every change to who a collection knows goes through here: identify jobs record the version
    they searched, re-runs compare versions, and a re-index switches over only if it is unchanged.
    The increment happens in SQL, so two workers bumping at once both count; on PostgreSQL it
    also locks the row until commit, so versions commit in order. ``people`` are the ids of the
    people whose faces or names changed, logged for workers' person templates (None: anyone may
    have). Returns the new version.
    """
    values: dict[str, Any] = {"version": Collection.version + 1, "updated_at": utcnow()}
    if model_version is not None:
        values["model_version"] = model_version
    version = session.execute(
        update(Collection)
        .where(Collection.id == collection.id)
        .values(**values)
        .returning(Collection.version)
    ).scalar_one()
    changed: list[int | None] = [None] if people is None else [*sorted(set(people))]
    session.add_all(
        CollectionChange(collection_id=collection.id, version=version, person_id=person)
        for person in changed
    )
    if version % PRUNE_EVERY == 0:
        prune_changes(session, collection.id, version - LOG_KEEP)
    return int(version)


def prune_changes(session: Session, collection_id: int, through: int) -> None:
    """Delete a collection's logged changes up to version ``through`` (the log keeps the newest
    ``LOG_KEEP`` versions: facetrail.vectors.snapshots says why that is enough)."""
    session.execute(
        delete(CollectionChange).where(
            CollectionChange.collection_id == collection_id, CollectionChange.version <= through
        )
    )


def get_or_create_collection(
    session: Session, name: str, backend: str, options: dict[str, Any] | None = None
) -> Collection:
    if not COLLECTION_NAME.fullmatch(name):
        raise InvalidParameterError(
            f"collection name {name!r} must be 1-255 characters of letters, digits, _ . -"
        )
    row = session.scalar(select(Collection).where(Collection.name == name))
    if row is None:
        try:
            with session.begin_nested():
                row = Collection(
                    name=name,
                    backend=backend,
                    backend_collection_id=name,
                    backend_options=options or {},
                )
                session.add(row)
        except IntegrityError:
            row = session.scalar(select(Collection).where(Collection.name == name))
            assert row is not None
    if row.backend != backend:
        raise InvalidParameterError(
            f"collection {name!r} lives on the {row.backend!r} backend, not {backend!r}"
        )
    return row


def _person_query(collection: Collection, external_id: str) -> Select[tuple[Person]]:
    return select(Person).where(
        Person.collection_id == collection.id, Person.external_id == external_id
    )


def find_person(session: Session, collection: Collection, external_id: str) -> Person | None:
    return session.scalar(_person_query(collection, external_id))


def get_person(session: Session, collection: Collection, external_id: str) -> Person:
    person = find_person(session, collection, external_id)
    if person is None:
        raise NotFoundError(f"no person {external_id!r} in collection {collection.name!r}")
    return person


def get_or_create_person(
    session: Session, collection: Collection, external_id: str, display_name: str | None = None
) -> Person:
    query = _person_query(collection, external_id)
    row = session.scalar(query)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = Person(
                collection_id=collection.id,
                external_id=external_id,
                display_name=display_name or external_id,
            )
            session.add(row)
    except IntegrityError:
        # Another worker enrolled the same new person first: use theirs.
        row = session.scalar(query)
        assert row is not None
    return row


# Built once: every job item looks its photo up.
_images = table(Image)
_IMAGE_BY_HASH = select(_images.c.id).where(_images.c.sha256 == bindparam("sha256"))


def get_or_create_image_id(session: Session, image: LoadedImage) -> int:
    """The id of the photo's row (one per content hash), added if it is new."""
    query, params = _IMAGE_BY_HASH, {"sha256": image.sha256}
    found = session.scalar(query, params)
    if found is not None:
        return int(found)
    try:
        with session.begin_nested():
            return session.execute(
                insert(Image)
                .values(
                    sha256=image.sha256,
                    source_uri=image.source,
                    size_bytes=image.size_bytes,
                    width=image.width,
                    height=image.height,
                    format=image.format,
                )
                .returning(Image.id)
            ).scalar_one()
    except IntegrityError:  # added meanwhile by another worker
        found = session.scalar(query, params)
        assert found is not None
        return int(found)
