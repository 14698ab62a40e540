"""Identification: find the faces in a photo and name the ones a collection knows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import Field
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from facetrail.backends.base import Backend, BoundingBox, DetectedFace, FaceSearch, Quality
from facetrail.backends.local.vectors import from_blob, to_blob
from facetrail.images import LoadedImage
from facetrail.jobs.base import (
    Claim,
    CollectionName,
    ImageRef,
    JobType,
    Request,
    add_job,
    collection_job,
    source_items,
    store_images,
    with_names,
)
from facetrail.models import Collection, FaceResult, ItemStatus, Job, JobItem, JobKind
from facetrail.models.base import table
from facetrail.services import corrections, past
from facetrail.services.naming import name_faces, person_ids, search_depth
from facetrail.services.records import get_collection, get_or_create_image_id
from facetrail.settings import Settings
from facetrail.shapes import attributes_json

if TYPE_CHECKING:
    from facetrail.jobs.runner import Context


_results = table(FaceResult)
# Built once: each photo's faces are written with it.
_INSERT_RESULTS = insert(_results).returning(_results.c.id, sort_by_parameter_order=True)


class IdentifyRequest(Request):
    kind: Literal["identify"] = "identify"
    collection: CollectionName
    images: list[ImageRef]
    # On the 0-100 similarity scale; the settings' match_threshold when absent.
    threshold: Annotated[float, Field(ge=0, le=100, strict=True)] | None = None
    # Also each face's age range, gender, emotions... (Rekognition's names), where measured.
    attributes: bool = False


class IdentifyJob(JobType):
    """Detect and search every face of each photo; name those above the threshold."""

    name = "identify"
    kind = JobKind.IDENTIFY
    schema = IdentifyRequest

    def create(self, session: Session, settings: Settings, request: IdentifyRequest) -> Job:
        collection = get_collection(session, request.collection)
        parameters: dict[str, object] = {"collection": request.collection}
        if request.threshold is not None:
            parameters["threshold"] = request.threshold
        if request.attributes:
            parameters["attributes"] = True
        job = collection_job(self.kind, collection, with_names(parameters, request.images))
        return add_job(session, job, source_items(store_images(settings, request.images)))

    def run(self, ctx: Context, claim: Claim) -> None:
        assert claim.backend_collection_id is not None and claim.collection_id is not None
        backend = ctx.backend(claim.backend, claim.backend_options)
        threshold = float(claim.parameters.get("threshold", ctx.settings.match_threshold))
        depth = search_depth(backend)
        if depth == 0 and claim.collection_model_version:
            # No backend search reads the collection, so its embedding space is checked here.
            name = str(claim.parameters.get("collection", claim.backend_collection_id))
            backend.check_model(name, claim.collection_model_version)
        stored = _stored_searches(ctx, claim, backend)
        image = None
        if stored is not None:
            searches, image_id = stored
        else:
            image = ctx.open_image(claim.source)
            searches = backend.identify_faces(
                claim.backend_collection_id, image, max_matches=depth, threshold=0.0
            )
        attributes: list[dict[str, Any] | None] = [None] * len(searches)
        if claim.parameters.get("attributes") and searches:
            image = image or ctx.open_image(claim.source)
            attributes = _attributes(backend, image, searches)
        with ctx.session() as session:
            if image is not None:
                image_id = get_or_create_image_id(session, image)
            # The collection row is read for its templates' version anyway: this loads it.
            collection = session.get_one(Collection, claim.collection_id)
            boxes = [s.face.box for s in searches]
            rules = corrections.rules_for(session, collection, image_id, boxes)
            assignments = name_faces(
                session, claim.collection_id, backend, searches, threshold, rules=rules
            )
            named = {a.external_id for a in assignments if a.external_id}
            people = person_ids(session, claim.collection_id, backend, named)
            if claim.attempts > 1:
                # A retried item replaces what an interrupted attempt may have written.
                session.execute(delete(FaceResult).where(FaceResult.job_item_id == claim.item_id))
            rows: list[dict[str, Any]] = []
            for index, (search, assignment) in enumerate(zip(searches, assignments, strict=True)):
                box, quality = search.face.box, search.face.quality
                blob = None if search.embedding is None else to_blob(search.embedding)
                rows.append(
                    {
                        "job_item_id": claim.item_id,
                        "face_index": index,
                        "box_left": box.left,
                        "box_top": box.top,
                        "box_width": box.width,
                        "box_height": box.height,
                        "confidence": search.face.confidence,
                        "brightness": quality.brightness if quality else None,
                        "sharpness": quality.sharpness if quality else None,
                        "person_id": people.get(assignment.external_id or ""),
                        "person_external_id": assignment.external_id,
                        "similarity": assignment.similarity,
                        "candidates": [
                            {"person": c.external_id, "similarity": round(c.similarity, 2)}
                            for c in assignment.candidates
                        ],
                        "embedding": blob,
                        "model_version": backend.model_version,
                        "attributes": attributes[index],
                    }
                )
            # Core rather than ORM objects: nothing reads them back, and this runs per photo.
            ids = list(session.scalars(_INSERT_RESULTS, rows)) if rows else []
            # Searchable in the past from this commit on (services/past.py).
            past.log_changes(
                session,
                claim.collection_id,
                [i for i, r in zip(ids, rows, strict=True) if r["embedding"] is not None],
                [],
            )
            ctx.succeed(session, claim, image_id)


def _attributes(
    backend: Backend, image: LoadedImage, searches: list[FaceSearch]
) -> list[dict[str, Any] | None]:
    """Each searched face's attributes: from the backend's detection with attributes, matched
    by box (the same detector finds the same faces; the best overlap above 0.5 wins)."""
    detected = backend.detect_faces(image, attributes=True)
    out: list[dict[str, Any] | None] = []
    for search in searches:
        best = max(detected, key=lambda d: d.box.iou(search.face.box), default=None)
        if best is None or best.attributes is None or best.box.iou(search.face.box) < 0.5:
            out.append(None)
            continue
        out.append(attributes_json(best.attributes))
    return out


def _stored_searches(
    ctx: Context, claim: Claim, backend: Backend
) -> tuple[list[FaceSearch], int | None] | None:
    """For a re-run: the original item's faces searched again with their stored embeddings,
    when the model is unchanged; None when the photo must be analysed again."""
    if claim.rerun_of_id is None:
        return None
    assert claim.backend_collection_id is not None
    with ctx.session() as session:
        original = session.scalar(
            select(JobItem).where(
                JobItem.job_id == claim.rerun_of_id, JobItem.position == claim.position
            )
        )
        if original is None or original.status != ItemStatus.SUCCEEDED:
            return None
        faces = list(original.faces)
        if any(f.embedding is None or f.model_version != backend.model_version for f in faces):
            return None
        image_id = original.image_id
        detected = [
            DetectedFace(
                box=BoundingBox(f.box_left, f.box_top, f.box_width, f.box_height),
                confidence=f.confidence,
                quality=(
                    None
                    if f.brightness is None or f.sharpness is None
                    else Quality(f.brightness, f.sharpness)
                ),
            )
            for f in faces
        ]
        vectors = [from_blob(f.embedding) for f in faces if f.embedding is not None]
    if not detected:
        return [], image_id
    matrix = np.stack(vectors)
    per_face = backend.search_embeddings(
        claim.backend_collection_id, matrix, max_faces=search_depth(backend)
    )
    if per_face is None:
        return None
    searches = [
        FaceSearch(face=d, matches=m, embedding=e)
        for d, m, e in zip(detected, per_face, matrix, strict=True)
    ]
    return searches, image_id
