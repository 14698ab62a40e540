"""Running one job item: load the image, call the backend, write the result rows.

An item is the idempotency unit: a finished item is never redone, and a retried one replaces
whatever a previous attempt wrote, so a killed worker neither loses nor duplicates results.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from facetrail.backends.base import IndexedFace, Recognizer
from facetrail.backends.local.vectors import to_blob
from facetrail.db import session_scope
from facetrail.errors import BackendUnavailableError, FacetrailError, NoFaceError, NotFoundError
from facetrail.identification import assign
from facetrail.images import LoadedImage, load_image
from facetrail.models import (
    Collection,
    Face,
    FaceResult,
    ItemStatus,
    JobItem,
    JobKind,
    Person,
)
from facetrail.models.base import utcnow
from facetrail.services.jobs import rollup
from facetrail.services.records import (
    get_collection,
    get_or_create_image,
    get_or_create_person,
)
from facetrail.settings import Settings

log = logging.getLogger(__name__)

RecognizerFor = Callable[[str], Recognizer]


def run_item(
    settings: Settings, item_id: int, recognizer_for: RecognizerFor, *, final_attempt: bool = True
) -> ItemStatus:
    """Run one item. Raises a retryable FacetrailError when the caller should try again."""
    try:
        claimed = _claim(settings, item_id)
        if claimed is None:
            return ItemStatus.SUCCEEDED  # already finished by an earlier delivery
        kind, backend, collection, source, external_id = claimed
        recognizer = recognizer_for(backend)
        image = load_image(
            source, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
        )
        if kind == JobKind.ENROLL:
            assert external_id is not None
            _enroll(settings, item_id, recognizer, collection, image, external_id)
        else:
            _identify(settings, item_id, recognizer, collection, image)
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


def _claim(settings: Settings, item_id: int) -> tuple[JobKind, str, str, str, str | None] | None:
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
        return (
            job.kind,
            job.backend,
            str(job.parameters["collection"]),
            item.source,
            item.person_external_id,
        )


def _fail(settings: Settings, item_id: int, code: str, message: str) -> None:
    with session_scope(settings) as session:
        item = session.get(JobItem, item_id)
        if item is None:
            return
        session.execute(delete(FaceResult).where(FaceResult.job_item_id == item_id))
        item.status = ItemStatus.FAILED
        item.error_code = code
        item.error = message
        item.finished_at = utcnow()
        rollup(session, item.job_id)


def _succeed(session: Session, item: JobItem, image_id: int) -> None:
    item.status = ItemStatus.SUCCEEDED
    item.image_id = image_id
    item.error = item.error_code = None
    item.finished_at = utcnow()
    rollup(session, item.job_id)


def _enroll(
    settings: Settings,
    item_id: int,
    recognizer: Recognizer,
    collection_name: str,
    image: LoadedImage,
    external_id: str,
) -> None:
    recognizer.ensure_collection(collection_name)
    # An enrollment photo shows one person: index its largest face only.
    result = recognizer.index_faces(collection_name, image, external_id=external_id, max_faces=1)
    if not result.indexed:
        raise NoFaceError(f"{image.source}: no face found to enroll")
    with session_scope(settings) as session:
        item = session.get_one(JobItem, item_id)
        collection = get_collection(session, collection_name)
        person = get_or_create_person(
            session, collection, external_id, display_name=external_id.replace("_", " ")
        )
        image_row = get_or_create_image(session, image)
        for indexed in result.indexed:
            _upsert_face(session, recognizer, collection, person, indexed, image_row.id, item_id)
        session.execute(
            update(Collection)
            .where(Collection.id == collection.id)
            .values(version=Collection.version + 1, model_version=recognizer.model_version)
        )
        _succeed(session, item, image_row.id)


def _upsert_face(
    session: Session,
    recognizer: Recognizer,
    collection: Collection,
    person: Person,
    indexed: IndexedFace,
    image_id: int,
    item_id: int,
) -> None:
    row = session.scalar(
        select(Face).where(Face.backend == recognizer.name, Face.face_id == indexed.face_id)
    )
    if row is None:
        row = Face(face_id=indexed.face_id, backend=recognizer.name)
        session.add(row)
    face = indexed.face
    row.collection_id = collection.id
    row.person_id = person.id
    row.model_name = recognizer.model_version.split("@", 1)[0]
    row.model_version = recognizer.model_version
    row.embedding = None if indexed.embedding is None else to_blob(indexed.embedding)
    row.box_left, row.box_top = face.box.left, face.box.top
    row.box_width, row.box_height = face.box.width, face.box.height
    row.confidence = face.confidence
    row.brightness = face.quality.brightness if face.quality else None
    row.sharpness = face.quality.sharpness if face.quality else None
    row.image_id = image_id
    row.image_sha256 = indexed.image_sha256
    row.crop_jpeg = indexed.crop_jpeg
    row.job_item_id = item_id


def _identify(
    settings: Settings,
    item_id: int,
    recognizer: Recognizer,
    collection_name: str,
    image: LoadedImage,
) -> None:
    searches = recognizer.identify_faces(collection_name, image, threshold=0.0)
    with session_scope(settings) as session:
        item = session.get_one(JobItem, item_id)
        threshold = float(item.job.parameters.get("threshold", settings.match_threshold))
        assignments = assign([s.matches for s in searches], threshold)
        collection = get_collection(session, collection_name)
        named = {a.external_id for a in assignments if a.external_id}
        people = {
            p.external_id: p.id
            for p in session.scalars(
                select(Person).where(
                    Person.collection_id == collection.id, Person.external_id.in_(named)
                )
            )
        }
        image_row = get_or_create_image(session, image)
        # A retried item replaces what an interrupted attempt may have written.
        session.execute(delete(FaceResult).where(FaceResult.job_item_id == item_id))
        for index, (search, assignment) in enumerate(zip(searches, assignments, strict=True)):
            box = search.face.box
            session.add(
                FaceResult(
                    job_item_id=item_id,
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
                )
            )
        _succeed(session, item, image_row.id)
