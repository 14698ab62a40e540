"""Renaming, merging and deleting people. Deleting is erasure: see :func:`delete`.

Each function works in the caller's session (one unit of work) and bumps the collection's version.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from facetrail.backends import backend_for
from facetrail.errors import (
    CollectionNotFoundError,
    InvalidParameterError,
    UnsupportedOperationError,
    UserNotFoundError,
)
from facetrail.images.store import SCHEME as UPLOAD_SCHEME
from facetrail.images.store import image_store
from facetrail.models import (
    AuditEvent,
    Collection,
    Face,
    FaceResult,
    Image,
    ItemStatus,
    Job,
    JobItem,
    JobKind,
    Person,
    TagResult,
)
from facetrail.models.base import utcnow
from facetrail.services import audit, corrections, naming, past, unknowns, users
from facetrail.services.records import bump_version, get_collection, get_person
from facetrail.settings import Settings

# What an erased name, source or error text is replaced with.
ERASED = "[erased]"


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
    person = get_person(session, collection, external_id)
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
        # Where people are users, the user goes by the new id too (the backend first: a
        # failure leaves our records as they were, and a second try finishes the move).
        _move_user(session, settings, collection, external_id, new_external_id, person.id)
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
    person = get_person(session, collection, external_id)
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
    source = get_person(session, collection, source_id)
    target = get_person(session, collection, target_id)
    moved = session.scalar(select(func.count()).where(Face.person_id == source.id)) or 0
    _move_user(session, settings, collection, source_id, target_id, source.id)
    session.execute(update(Face).where(Face.person_id == source.id).values(person_id=target.id))
    # Past results that named the source now point at the merged person; their recorded
    # name stays what it was at the time.
    session.execute(
        update(FaceResult).where(FaceResult.person_id == source.id).values(person_id=target.id)
    )
    corrections.move_person(session, source.id, target.id)
    session.delete(source)
    bump_version(session, collection, people=[source.id, target.id])
    audit.record(
        session, settings, "merge", collection, source=source_id, target=target_id, faces=moved
    )
    return {"merged": source_id, "into": target_id, "faces_moved": moved}


def _move_user(
    session: Session, settings: Settings, collection: Collection, old: str, new: str, person: int
) -> None:
    """The backend user ``old`` (if people are users there) gives its faces, the faces our
    records give person ``person``, to the user ``new``."""
    backend = backend_for(settings, collection.backend, dict(collection.backend_options))
    if not backend.people_as_users:
        return
    faces = session.scalars(
        select(Face.face_id).where(
            Face.person_id == person,
            Face.collection_id == collection.id,
            Face.backend == collection.backend,
        )
    ).all()
    users.move_faces(backend, collection.backend_collection_id, old, new, list(faces))


def person_digest(collection_name: str, external_id: str) -> str:
    """The tombstone's reference to an erased person: sha256 of "<collection>\\0<external id>".

    It names nobody, yet whoever knows the id can confirm that it was erased, and when.
    """
    return hashlib.sha256(f"{collection_name}\0{external_id}".encode()).hexdigest()


@dataclass
class _Erasure:
    """What one erasure found: the names to scrub, and where the person's data lives."""

    collection: Collection
    person: Person
    # Every external id the person went by here (renames, people merged into them) that no
    # other person holds now, and every display name they had.
    aliases: set[str]
    display_names: set[str]
    faces: list[Face] = field(default_factory=list)
    items: list[JobItem] = field(default_factory=list)

    @property
    def names(self) -> set[str]:
        return self.aliases | self.display_names


def delete(
    session: Session, settings: Settings, collection_name: str, external_id: str
) -> dict[str, Any]:
    """Erase a person: everything that holds their biometric data or names them goes.

    The list is docs/security.md's "Erasure": their faces and crops; their faces on the backend,
    in the collection's index and in every staging index of a re-index; the embeddings and
    names of identification results that named them or left a face of theirs unnamed (and so
    those faces in every process's past-faces index, as logged removals), and their entries
    among candidates; corrections naming them; clusters of unknown faces named after them, and
    unknown faces whose embedding goes (with the clusters' centroids and contact sheets); their
    entries in known-people tag results; their enrollment and re-index items (names, sources,
    error texts; unfinished ones fail); photos only their enrollment used (rows and uploaded
    bytes); their names in earlier audit events; this process's cached templates, vectors and
    past faces. What stays is one audit event, "delete_person", whose ``person_sha256`` is
    :func:`person_digest`.

    External copies go first (backend faces, then uploaded bytes): if the transaction then
    fails, nothing the database still references is lost that a retry would need.
    """
    collection = get_collection(session, collection_name)
    person = get_person(session, collection, external_id)
    erasure = _find(session, collection, person)
    backend_faces = _erase_backend_faces(session, settings, erasure)
    # Clusters named after them go whole, before their names are scrubbed from results.
    clustered = unknowns.forget_person(session, settings, collection, person.id, erasure.aliases)
    results = _erase_face_results(session, erasure)
    unknown_faces = clustered["unknown_faces"] + unknowns.drop_erased(session, settings, collection)
    corrected = corrections.erase_person(session, person.id)
    tags = _erase_tag_results(session, erasure)
    images = _erase_items_and_images(session, settings, erasure)
    events = _erase_audit_names(session, erasure)
    for face in erasure.faces:
        session.delete(face)
    session.delete(person)
    bump_version(session, collection, people=[person.id])
    counts = {
        "faces": len(erasure.faces),
        "backend_faces": backend_faces,
        "face_results": results,
        "corrections": corrected,
        "tag_results": tags,
        "job_items": len(erasure.items),
        "images": images,
        "audit_events": events,
        "unknown_clusters": clustered["unknown_clusters"],
        "unknown_faces": unknown_faces,
    }
    audit.record(
        session,
        settings,
        "delete_person",
        collection,
        person_sha256=person_digest(collection.name, external_id),
        **counts,
    )
    naming.forget(collection.id)
    past.forget(session, collection.id)
    naming.drop_snapshots(session, settings, collection)
    return {"deleted": external_id, "faces_deleted": len(erasure.faces), **counts}


def _find(session: Session, collection: Collection, person: Person) -> _Erasure:
    others = set(
        session.scalars(
            select(Person.external_id).where(
                Person.collection_id == collection.id, Person.id != person.id
            )
        )
    )
    events = list(
        session.scalars(select(AuditEvent).where(AuditEvent.collection_id == collection.id))
    )
    aliases = {person.external_id}
    display_names = {person.display_name}
    grew = True
    while grew:  # follow renames and merges back to every name the person had
        before = len(aliases)
        for event in events:
            d = event.details or {}
            if event.action == "rename" and d.get("external_id") in aliases:
                aliases |= _strings(d.get("person"))
                display_names |= _strings(d.get("display_name"))
            elif event.action == "merge" and d.get("target") in aliases:
                aliases |= _strings(d.get("source"))
        aliases -= others  # a name someone else holds now is theirs
        aliases.add(person.external_id)
        grew = len(aliases) > before
    erasure = _Erasure(collection, person, aliases, display_names)
    erasure.faces = list(session.scalars(select(Face).where(Face.person_id == person.id)))
    erasure.items = list(
        session.scalars(
            select(JobItem)
            .join(Job, JobItem.job_id == Job.id)
            .where(
                Job.collection_id == collection.id,
                Job.kind.in_([JobKind.ENROLL, JobKind.REINDEX]),
                JobItem.person_external_id.in_(aliases),
            )
        )
    )
    return erasure


def _strings(value: Any) -> set[str]:
    return {value} if isinstance(value, str) and value else set()


def _backend_indexes(
    session: Session, collection: Collection
) -> list[tuple[str, dict[str, Any], str]]:
    """(backend, options, collection id) of the live index and every re-index's staging one."""
    indexes = [
        (collection.backend, dict(collection.backend_options), collection.backend_collection_id)
    ]
    jobs = session.scalars(
        select(Job)
        .where(Job.collection_id == collection.id, Job.kind == JobKind.REINDEX)
        .order_by(Job.id)
    )
    for job in jobs:
        params = job.parameters or {}
        staging = params.get("staging_collection")
        if staging and all(staging != i[2] for i in indexes):
            indexes.append(
                (params["target_backend"], dict(params.get("target_options") or {}), staging)
            )
    return indexes


def _erase_backend_faces(session: Session, settings: Settings, erasure: _Erasure) -> int:
    """Delete the person's faces from every index: those our records name, and any the index
    holds under one of their names that no other person's record claims (a staging face
    written by a re-index item that was interrupted before it recorded it)."""
    theirs: dict[str, set[str]] = {}
    for face in erasure.faces:
        theirs.setdefault(face.backend, set()).add(face.face_id)
    claimed = {
        (backend, face_id)
        for backend, face_id in session.execute(
            select(Face.backend, Face.face_id).where(
                Face.collection_id == erasure.collection.id, Face.person_id != erasure.person.id
            )
        ).tuples()
    }
    deleted = 0
    for name, options, index in _backend_indexes(session, erasure.collection):
        backend = backend_for(settings, name, options)
        try:
            listed = backend.list_faces(index)
        except CollectionNotFoundError:
            continue  # a staging index already dropped
        wanted = {
            r.face_id
            for r in listed
            if r.face_id in theirs.get(name, set())
            or (r.external_id in erasure.aliases and (name, r.face_id) not in claimed)
        }
        if wanted:
            deleted += len(backend.delete_faces(index, sorted(wanted)))
        for alias in sorted(erasure.aliases):
            # A Rekognition user of theirs (the Users API) names them; its faces went above.
            with contextlib.suppress(UserNotFoundError, UnsupportedOperationError):
                backend.delete_user(index, alias)
    return deleted


def _erase_face_results(session: Session, erasure: _Erasure) -> int:
    """Identification results of this collection: a face named after the person loses its
    name, similarity and embedding; an unnamed face whose best candidate they were (likely
    theirs, left unnamed by a strict threshold) loses its embedding; every candidate entry
    naming them goes."""
    rows = session.scalars(
        select(FaceResult)
        .join(JobItem, FaceResult.job_item_id == JobItem.id)
        .join(Job, JobItem.job_id == Job.id)
        .where(Job.collection_id == erasure.collection.id)
    )
    changed = 0
    unsearchable: list[int] = []
    for row in rows:
        named = row.person_id == erasure.person.id or row.person_external_id in erasure.aliases
        candidates = list(row.candidates or [])
        kept = [c for c in candidates if c.get("person") not in erasure.aliases]
        if not named and len(kept) == len(candidates):
            continue
        leading = (
            row.person_external_id is None and bool(candidates) and not _kept(candidates[0], kept)
        )
        if named:
            row.person_id = None
            row.person_external_id = None
            row.similarity = None
        if (named or leading) and row.embedding is not None:
            row.embedding = None
            unsearchable.append(row.id)
        row.candidates = kept
        changed += 1
    # Out of every process's past-faces index too (at its next search).
    past.log_changes(session, erasure.collection.id, [], unsearchable)
    return changed


def _kept(candidate: Any, kept: list[dict[str, Any]]) -> bool:
    return any(candidate is c for c in kept)


def _erase_tag_results(session: Session, erasure: _Erasure) -> int:
    """Known-people results (tag jobs' "people" operation) lose the person's entries whole:
    their name, links and the face's box, landmarks and pose."""
    changed = 0
    for row in session.scalars(select(TagResult).where(TagResult.op == "people")):
        payload = row.payload
        if not isinstance(payload, dict):
            continue
        faces = list(payload.get("CelebrityFaces") or [])
        kept = [f for f in faces if not _names_them(f, erasure)]
        if len(kept) != len(faces):
            row.payload = {**payload, "CelebrityFaces": kept}
            changed += 1
    return changed


def _names_them(entry: Any, erasure: _Erasure) -> bool:
    return isinstance(entry, dict) and entry.get("Id") in erasure.aliases


def _erase_items_and_images(session: Session, settings: Settings, erasure: _Erasure) -> int:
    """Enrollment and re-index items of the person lose their name, source and error text
    (unfinished ones fail); photos nothing else refers to go, with their uploaded bytes."""
    from facetrail.jobs.runner import rollup

    item_ids = {item.id for item in erasure.items}
    face_ids = {face.id for face in erasure.faces}
    image_ids = {i.image_id for i in erasure.items if i.image_id is not None}
    image_ids |= {f.image_id for f in erasure.faces if f.image_id is not None}
    sources = {item.source for item in erasure.items}
    uploads = {s[len(UPLOAD_SCHEME) :] for s in sources if s.lower().startswith(UPLOAD_SCHEME)}
    removed = 0
    for image in session.scalars(select(Image).where(Image.id.in_(image_ids))):
        other_item = session.scalar(
            select(JobItem)
            .where(JobItem.image_id == image.id, JobItem.id.not_in(item_ids or {0}))
            .limit(1)
        )
        other_face = session.scalar(
            select(Face.id)
            .where(Face.image_id == image.id, Face.id.not_in(face_ids or {0}))
            .limit(1)
        )
        if other_item is None and other_face is None:
            session.delete(image)
            uploads.add(image.sha256)
            removed += 1
        elif image.source_uri in sources:
            # Still someone else's photo: keep it under a source that is not the person's.
            image.source_uri = other_item.source if other_item is not None else ERASED
    # Uploaded bytes go unless another item reads them (photos uploaded for the enrollment
    # only); a photo that another job also read, by its own source, keeps its row.
    still_read = set(
        session.scalars(
            select(JobItem.source).where(
                JobItem.source.in_([UPLOAD_SCHEME + k for k in uploads]),
                JobItem.id.not_in(item_ids or {0}),
            )
        )
    )
    kept_images = set(
        session.scalars(
            select(Image.sha256).where(Image.sha256.in_(uploads), Image.id.not_in(image_ids or {0}))
        )
    )
    # A store that cannot delete fails the erasure (and rolls it back) rather than keep a photo.
    for key in sorted(uploads):
        if UPLOAD_SCHEME + key not in still_read and key not in kept_images:
            image_store(settings).delete(key)
    jobs: set[int] = set()
    for item in erasure.items:
        item.person_external_id = None
        item.source = ERASED
        item.image_id = None
        if item.error:
            item.error = ERASED
        if item.status in (ItemStatus.PENDING, ItemStatus.RUNNING):
            item.status = ItemStatus.FAILED
            item.error_code = "erased"
            item.error = "the person was deleted"
            item.finished_at = utcnow()
        names = dict((item.job.parameters or {}).get("image_names") or {})
        if names.pop(str(item.position), None) is not None:
            item.job.parameters = {**item.job.parameters, "image_names": names}
        jobs.add(item.job_id)
    session.flush()
    for job_id in sorted(jobs):
        rollup(session, job_id)
    return removed


def _erase_audit_names(session: Session, erasure: _Erasure) -> int:
    """Earlier audit events of the collection keep what happened, not whom it happened to."""
    changed = 0
    for event in session.scalars(
        select(AuditEvent).where(AuditEvent.collection_id == erasure.collection.id)
    ):
        details = event.details or {}
        if not _mentions(details, erasure.aliases):
            continue
        scrubbed = _scrub(details, erasure.names)
        if event.action == "set_urls":
            scrubbed["urls"] = []
        event.details = scrubbed
        changed += 1
    return changed


def _mentions(value: Any, names: set[str]) -> bool:
    if isinstance(value, str):
        return value in names
    if isinstance(value, dict):
        return any(_mentions(v, names) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, names) for v in value)
    return False


def _scrub(value: Any, names: Iterable[str]) -> Any:
    names = set(names)
    if isinstance(value, str):
        return ERASED if value in names else value
    if isinstance(value, dict):
        return {k: _scrub(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, names) for v in value]
    return value
