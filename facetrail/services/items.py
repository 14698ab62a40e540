"""Running one job item: load the image, call the backend, write the result rows.

An item is the idempotency unit: a finished item is never redone, and a retried one replaces
whatever a previous attempt wrote, so a killed worker neither loses nor duplicates results.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from facetrail.backends.base import (
    Backend,
    BoundingBox,
    DetectedFace,
    FaceSearch,
)
from facetrail.backends.local.vectors import from_blob, to_blob
from facetrail.db import session_scope
from facetrail.errors import (
    BackendUnavailableError,
    FacetrailError,
    InvalidImageError,
    NoFaceError,
    NotFoundError,
)
from facetrail.images import LoadedImage, decode_image, load_image
from facetrail.models import (
    Collection,
    Face,
    FaceResult,
    ItemStatus,
    Job,
    JobItem,
    JobKind,
    Person,
    TagResult,
)
from facetrail.models.base import utcnow
from facetrail.services.faces import upsert_face
from facetrail.services.jobs import rollup
from facetrail.services.naming import name_faces
from facetrail.services.records import get_or_create_image, get_or_create_person
from facetrail.services.reindex import drop_old_index, switch_over
from facetrail.settings import Settings

log = logging.getLogger(__name__)

# (backend name, the collection's pinned options) -> the recognizer to use
RecognizerFor = Callable[[str, dict[str, Any]], Backend]


@dataclass(frozen=True)
class Claim:
    item_id: int
    kind: JobKind
    backend: str
    backend_options: dict[str, Any]
    collection_id: int
    backend_collection_id: str
    source: str
    person_external_id: str | None
    threshold: float
    position: int
    parameters: dict[str, Any]
    # For a re-run: the item of the original job that showed the same image.
    original_item_id: int | None


def run_item(
    settings: Settings, item_id: int, recognizer_for: RecognizerFor, *, final_attempt: bool = True
) -> ItemStatus:
    """Run one item. Raises a retryable FacetrailError when the caller should try again."""
    try:
        claim = _claim(settings, item_id)
        if claim is None:
            return ItemStatus.SUCCEEDED  # already finished by an earlier delivery
        if claim.kind == JobKind.TAG:
            _tag(settings, claim)
            return ItemStatus.SUCCEEDED
        if claim.kind == JobKind.REINDEX:
            params = claim.parameters
            target = recognizer_for(params["target_backend"], params["target_options"])
            old_index = _reindex(settings, claim, target)
            if old_index is not None:
                drop_old_index(settings, old_index)
            return ItemStatus.SUCCEEDED
        recognizer = recognizer_for(claim.backend, claim.backend_options)
        if claim.kind == JobKind.ENROLL:
            _enroll(settings, claim, recognizer)
        else:
            _identify(settings, claim, recognizer)
        return ItemStatus.SUCCEEDED
    except (OperationalError, DBAPIError) as exc:
        # The database went away: nothing was committed for this item, so try again later.
        raise BackendUnavailableError(f"database unavailable: {exc.orig}") from exc
    except FacetrailError as exc:
        if exc.retryable and not final_attempt:
            raise
        _fail(settings, item_id, exc.code, exc.message)
        return ItemStatus.FAILED
    except Exception as exc:  # an unexpected bug must fail one item, not the batch
        log.exception("item %s failed unexpectedly", item_id)
        _fail(settings, item_id, "internal", f"{type(exc).__name__}: {exc}")
        return ItemStatus.FAILED


def _claim(settings: Settings, item_id: int) -> Claim | None:
    with session_scope(settings) as session:
        item = session.get(JobItem, item_id)
        if item is None:
            raise NotFoundError(f"job item {item_id} does not exist")
        if item.status in (ItemStatus.SUCCEEDED, ItemStatus.FAILED):
            return None
        item.status = ItemStatus.RUNNING
        item.attempts += 1
        item.started_at = utcnow()
        job = item.job
        if job.started_at is None:
            job.started_at = utcnow()
        rollup(session, job.id)
        if job.kind == JobKind.TAG:
            # Tag jobs read no collection of their own (known people come from all
            # public-figure collections), so the collection fields stay empty.
            return Claim(
                item_id=item.id,
                kind=job.kind,
                backend=job.backend,
                backend_options={},
                collection_id=0,
                backend_collection_id="",
                source=item.source,
                person_external_id=None,
                threshold=settings.match_threshold,
                position=item.position,
                parameters=dict(job.parameters),
                original_item_id=None,
            )
        if job.collection_id is None:
            raise NotFoundError(f"the collection of job {job.id} was deleted")
        collection = session.get_one(Collection, job.collection_id)
        original = None
        if job.rerun_of_id is not None:
            original = session.scalar(
                select(JobItem.id).where(
                    JobItem.job_id == job.rerun_of_id, JobItem.position == item.position
                )
            )
        return Claim(
            item_id=item.id,
            kind=job.kind,
            backend=collection.backend,
            backend_options=dict(collection.backend_options),
            collection_id=collection.id,
            backend_collection_id=collection.backend_collection_id,
            source=item.source,
            person_external_id=item.person_external_id,
            threshold=float(job.parameters.get("threshold", settings.match_threshold)),
            position=item.position,
            parameters=dict(job.parameters),
            original_item_id=original,
        )


def _fail(settings: Settings, item_id: int, code: str, message: str) -> None:
    with session_scope(settings) as session:
        item = session.get(JobItem, item_id)
        if item is None:
            return
        session.execute(delete(FaceResult).where(FaceResult.job_item_id == item_id))
        session.execute(delete(TagResult).where(TagResult.job_item_id == item_id))
        item.status = ItemStatus.FAILED
        item.error_code = code
        item.error = message
        item.finished_at = utcnow()
        rollup(session, item.job_id)


def _succeed(session: Session, item: JobItem, image_id: int | None) -> Job:
    item.status = ItemStatus.SUCCEEDED
    item.image_id = image_id
    item.error = item.error_code = None
    item.finished_at = utcnow()
    return rollup(session, item.job_id)


def _load(settings: Settings, source: str) -> LoadedImage:
    return load_image(
        source, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
    )


def _enroll(settings: Settings, claim: Claim, recognizer: Backend) -> None:
    assert claim.person_external_id is not None
    image = _load(settings, claim.source)
    recognizer.ensure_collection(claim.backend_collection_id)
    # An enrollment photo shows one person: index its largest face only.
    result = recognizer.index_faces(
        claim.backend_collection_id, image, external_id=claim.person_external_id, max_faces=1
    )
    if not result.indexed:
        raise NoFaceError(f"{image.source}: no face found to enroll")
    with session_scope(settings) as session:
        item = session.get_one(JobItem, claim.item_id)
        collection = session.get_one(Collection, claim.collection_id)
        person = get_or_create_person(
            session,
            collection,
            claim.person_external_id,
            display_name=claim.person_external_id.replace("_", " "),
        )
        image_row = get_or_create_image(session, image)
        for indexed in result.indexed:
            upsert_face(
                session,
                backend=recognizer.name,
                model_version=recognizer.model_version,
                collection=collection,
                person=person,
                indexed=indexed,
                image_id=image_row.id,
                item_id=claim.item_id,
            )
        session.execute(
            update(Collection)
            .where(Collection.id == collection.id)
            .values(version=Collection.version + 1, model_version=recognizer.model_version)
        )
        _succeed(session, item, image_row.id)


def _tag(settings: Settings, claim: Claim) -> None:
    """Labels, text, moderation and known people for one image (a path, URL or s3:// key)."""
    from facetrail.backends import get_backend
    from facetrail.tagging.fetch import load_source
    from facetrail.tagging.operations import run_ops

    ops: list[str] = list(claim.parameters["ops"])
    backend = get_backend(settings, claim.backend)
    image = load_source(claim.source, settings)  # SHIM(H2): facetrail.images.open_image
    results = run_ops(settings, backend, image, ops)
    with session_scope(settings) as session:
        item = session.get_one(JobItem, claim.item_id)
        image_id = get_or_create_image(session, image).id
        # A retried item replaces what an interrupted attempt may have written.
        session.execute(delete(TagResult).where(TagResult.job_item_id == claim.item_id))
        for op in ops:
            session.add(TagResult(job_item_id=claim.item_id, op=op, payload=results[op]))
        _succeed(session, item, image_id)


def _reindex(settings: Settings, claim: Claim, target: Backend) -> dict[str, Any] | None:
    """Index one enrolled face into the staging collection, from its photo or stored crop."""
    staging = claim.parameters["staging_collection"]
    face_pk = claim.parameters["source_faces"][claim.position]
    assert claim.person_external_id is not None
    target.ensure_collection(staging)
    image: LoadedImage | None = None
    result = None
    if not claim.source.startswith("face:"):
        with contextlib.suppress(InvalidImageError):
            image = _load(settings, claim.source)
            result = target.index_faces(
                staging, image, external_id=claim.person_external_id, max_faces=1
            )
    if result is None or not result.indexed:
        # The photo is gone or unreadable: fall back to the aligned crop we stored.
        with session_scope(settings) as session:
            face = session.get(Face, face_pk)
            crop = face.crop_jpeg if face is not None else None
        if crop is None:
            raise NoFaceError(f"{claim.source}: neither the photo nor a stored crop is usable")
        image = decode_image(
            crop,
            source=f"face:{face_pk}",
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
        )
        result = target.index_faces(
            staging, image, external_id=claim.person_external_id, max_faces=1
        )
        if not result.indexed:
            raise NoFaceError(f"{claim.source}: no face found in the photo or its stored crop")
    with session_scope(settings) as session:
        item = session.get_one(JobItem, claim.item_id)
        collection = session.get_one(Collection, claim.collection_id)
        person = session.scalars(
            select(Person).where(
                Person.collection_id == collection.id,
                Person.external_id == claim.person_external_id,
            )
        ).one_or_none()
        if person is None:
            raise NotFoundError(f"person {claim.person_external_id!r} was deleted meanwhile")
        image_id = None
        if image is not None and not image.source.startswith("face:"):
            image_id = get_or_create_image(session, image).id
        for indexed in result.indexed:
            upsert_face(
                session,
                backend=target.name,
                model_version=target.model_version,
                collection=collection,
                person=person,
                indexed=indexed,
                image_id=image_id,
                item_id=claim.item_id,
            )
        job = _succeed(session, item, image_id)
        return switch_over(session, job)


def _stored_searches(
    settings: Settings, claim: Claim, recognizer: Backend
) -> tuple[list[FaceSearch], int | None] | None:
    """The original item's faces searched again with their stored embeddings, if possible."""
    if claim.original_item_id is None:
        return None
    with session_scope(settings) as session:
        original = session.get(JobItem, claim.original_item_id)
        if original is None or original.status != ItemStatus.SUCCEEDED:
            return None
        faces = list(original.faces)
        if any(f.embedding is None or f.model_version != recognizer.model_version for f in faces):
            return None
        image_id = original.image_id
        detected = [
            DetectedFace(
                box=BoundingBox(f.box_left, f.box_top, f.box_width, f.box_height),
                confidence=f.confidence,
            )
            for f in faces
        ]
        vectors = [from_blob(f.embedding) for f in faces if f.embedding is not None]
    if not detected:
        return [], image_id
    matrix = np.stack(vectors)
    per_face = recognizer.search_embeddings(claim.backend_collection_id, matrix)
    if per_face is None:
        return None
    searches = [
        FaceSearch(face=d, matches=m, embedding=e)
        for d, m, e in zip(detected, per_face, matrix, strict=True)
    ]
    return searches, image_id


def _identify(settings: Settings, claim: Claim, recognizer: Backend) -> None:
    stored = _stored_searches(settings, claim, recognizer)
    image = None
    if stored is not None:
        searches, image_id = stored
    else:
        image = _load(settings, claim.source)
        searches = recognizer.identify_faces(claim.backend_collection_id, image, threshold=0.0)
    with session_scope(settings) as session:
        item = session.get_one(JobItem, claim.item_id)
        if image is not None:
            image_id = get_or_create_image(session, image).id
        assignments = name_faces(
            session, claim.collection_id, recognizer, searches, claim.threshold
        )
        named = {a.external_id for a in assignments if a.external_id}
        people = dict(
            session.execute(
                select(Person.external_id, Person.id).where(
                    Person.collection_id == claim.collection_id, Person.external_id.in_(named)
                )
            )
            .tuples()
            .all()
        )
        # A retried item replaces what an interrupted attempt may have written.
        session.execute(delete(FaceResult).where(FaceResult.job_item_id == claim.item_id))
        for index, (search, assignment) in enumerate(zip(searches, assignments, strict=True)):
            box = search.face.box
            session.add(
                FaceResult(
                    job_item_id=claim.item_id,
                    face_index=index,
                    box_left=box.left,
                    box_top=box.top,
                    box_width=box.width,
                    box_height=box.height,
                    confidence=search.face.confidence,
                    person_id=people.get(assignment.external_id or ""),
                    person_external_id=assignment.external_id,
                    similarity=assignment.similarity,
                    candidates=[
                        {"person": c.external_id, "similarity": round(c.similarity, 2)}
                        for c in assignment.candidates
                    ],
                    embedding=None if search.embedding is None else to_blob(search.embedding),
                    model_version=recognizer.model_version,
                )
            )
        _succeed(session, item, image_id)
