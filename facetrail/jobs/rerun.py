"""Re-running an identification against the collection as it is now, and what changed.

A re-run is an identify job over the same images, linked to the job it repeats. No photo is read
where the first run stored its faces' embeddings: when the collection is unchanged since that run
(its version) and no correction was made on the photo, each face's result is copied; otherwise
every stored embedding of the job is scored against the people's current templates in one matrix
product and each photo's faces are assigned again, honouring corrections. Both happen in the
transaction that creates the job, so only items that need their photo (the first run failed,
another model, a backend without templates) are left to run as identify items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import Field
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, selectinload

from facetrail.backends import backend_for
from facetrail.backends.base import Backend, BoundingBox
from facetrail.backends.local.vectors import from_blob
from facetrail.errors import InvalidParameterError, NotFoundError
from facetrail.identification import Assignment, Candidate, FaceRule, assign_scores
from facetrail.jobs.base import Claim, JobType, Request, add_job, collection_job
from facetrail.jobs.identify import IdentifyJob
from facetrail.models import Collection, FaceResult, ItemStatus, Job, JobItem, JobKind
from facetrail.models.base import utcnow
from facetrail.services import audit, corrections, past
from facetrail.services.naming import person_ids, template_scores
from facetrail.services.records import get_collection_by_id
from facetrail.settings import Settings

if TYPE_CHECKING:
    from facetrail.jobs.runner import Context

# Smaller moves are rounding, not news.
SIMILARITY_EPSILON = 0.5


class RerunRequest(Request):
    kind: Literal["rerun"] = "rerun"
    job_id: Annotated[int, Field(ge=1, strict=True)]


class RerunJob(JobType):
    """Identify a finished identify job's images again; the new job's items are identify items."""

    name = "rerun"
    kind = JobKind.IDENTIFY
    schema = RerunRequest
    sources_from_caller = False

    def create(self, session: Session, settings: Settings, request: RerunRequest) -> Job:
        original = session.get(Job, request.job_id)
        if original is None:
            raise NotFoundError(f"job {request.job_id} does not exist")
        if original.kind != JobKind.IDENTIFY:
            raise InvalidParameterError(
                f"job {request.job_id} is a {original.kind.value} job; re-run identify jobs"
            )
        if original.collection_id is None:
            raise NotFoundError(f"the collection of job {request.job_id} was deleted")
        collection = get_collection_by_id(session, original.collection_id)
        job = collection_job(
            self.kind, collection, dict(original.parameters), rerun_of_id=original.id
        )
        items = [JobItem(position=i.position, source=i.source) for i in original.items]
        add_job(session, job, items)
        audit.record(session, settings, "rerun", collection, job_id=job.id, rerun_of=original.id)
        _finish_from_stored(session, settings, original, job, collection)
        return job

    def run(self, ctx: Context, claim: Claim) -> None:
        # Its jobs are identify jobs, so the runner sends their items to IdentifyJob; this only
        # keeps the two in step for a caller that asks this type directly.
        IdentifyJob().run(ctx, claim)


def _finish_from_stored(
    session: Session, settings: Settings, original: Job, job: Job, collection: Collection
) -> None:
    """Finish every item the first run's stored faces answer, without reading a photo."""
    from facetrail.jobs.runner import rollup  # the runner imports the job registry

    backend = backend_for(settings, collection.backend, dict(collection.backend_options))
    model = backend.model_version
    before = {
        i.position: i
        for i in session.scalars(
            select(JobItem)
            .where(JobItem.job_id == original.id, JobItem.status == ItemStatus.SUCCEEDED)
            .options(selectinload(JobItem.faces))
        )
    }
    # A photo is analysed again only where a face's embedding is missing (an erasure removed
    # it) or came from another model.
    ready = {
        item.id: before[item.position]
        for item in job.items
        if item.position in before
        and all(
            f.model_version == model and f.embedding is not None
            for f in before[item.position].faces
        )
    }
    if not ready:
        return
    unchanged = collection.version == original.collection_version
    corrected = corrections.corrected_photos(
        session, collection, [old.image_id for old in ready.values() if old.image_id]
    )
    # Copied where nothing changed; scored again where the collection changed or a correction
    # was made (or withdrawn) on the photo.
    assignments = {
        item_id: [_recorded(f) for f in old.faces]
        for item_id, old in ready.items()
        if unchanged and old.image_id not in corrected
    }
    again = [item_id for item_id in ready if item_id not in assignments]
    if again:
        threshold = float(job.parameters.get("threshold", settings.match_threshold))
        rules = corrections.rules_by_photo(
            session,
            collection,
            [(ready[i].image_id, [_box(f) for f in ready[i].faces]) for i in again],
        )
        rescored = _rescore(
            session, collection.id, backend, [ready[i] for i in again], threshold, rules
        )
        if rescored is None:
            # No templates: those photos run as identify items (which honour corrections).
            ready = {i: old for i, old in ready.items() if i in assignments}
        else:
            assignments.update(zip(again, rescored, strict=True))
    if not ready:
        return
    named = {a.external_id for faces in assignments.values() for a in faces if a.external_id}
    people = person_ids(session, collection.id, backend, named)
    rows: list[dict[str, Any]] = []
    now = utcnow()
    for item in job.items:
        if item.id not in ready:
            continue
        old = ready[item.id]
        for face, assignment in zip(old.faces, assignments[item.id], strict=True):
            rows.append(
                {
                    "job_item_id": item.id,
                    "face_index": face.face_index,
                    "box_left": face.box_left,
                    "box_top": face.box_top,
                    "box_width": face.box_width,
                    "box_height": face.box_height,
                    "confidence": face.confidence,
                    "brightness": face.brightness,
                    "sharpness": face.sharpness,
                    "person_id": people.get(assignment.external_id or ""),
                    "person_external_id": assignment.external_id,
                    "similarity": assignment.similarity,
                    "candidates": [
                        {"person": c.external_id, "similarity": round(c.similarity, 2)}
                        for c in assignment.candidates
                    ],
                    "embedding": face.embedding,
                    "model_version": face.model_version,
                }
            )
        item.status = ItemStatus.SUCCEEDED
        item.image_id = old.image_id
        item.started_at = item.finished_at = now
    if rows:
        session.execute(insert(FaceResult), rows)
        past.log_added_items(session, collection.id, ready)
    job.started_at = job.started_at or now
    rollup(session, job.id)


def _recorded(face: FaceResult) -> Assignment:
    candidates = [
        Candidate(str(c["person"]), float(c["similarity"])) for c in face.candidates or []
    ]
    return Assignment(face.person_external_id, face.similarity, candidates)


def _rescore(
    session: Session,
    collection_id: int,
    backend: Backend,
    items: list[JobItem],
    threshold: float,
    rules: list[list[FaceRule | None] | None],
) -> list[list[Assignment]] | None:
    """Each item's faces assigned again from one scoring of every stored embedding against the
    current templates, honouring each item's correction ``rules``; None where the backend keeps
    no templates."""
    stored = [f.embedding or b"" for item in items for f in item.faces]
    queries = np.stack([from_blob(b) for b in stored]) if stored else np.zeros((0, 0), np.float32)
    most = max((len(item.faces) for item in items), default=0)
    scored = template_scores(session, collection_id, backend, queries, most)
    if scored is None:
        return None
    rows = iter(scored)
    return [
        assign_scores([next(rows) for _ in item.faces], threshold, item_rules)
        for item, item_rules in zip(items, rules, strict=True)
    ]


def _box(face: FaceResult) -> BoundingBox:
    return BoundingBox(face.box_left, face.box_top, face.box_width, face.box_height)


@dataclass(frozen=True)
class _Face:
    box: BoundingBox
    person: str | None
    similarity: float | None


def _faces(session: Session, job_id: int) -> dict[int, tuple[str, list[_Face]]]:
    """Position -> (source, faces in order) for a job's items that have faces: the columns the
    report needs, in one query (no embeddings, no ORM objects)."""
    out: dict[int, tuple[str, list[_Face]]] = {}
    query = (
        select(
            JobItem.position,
            JobItem.source,
            FaceResult.box_left,
            FaceResult.box_top,
            FaceResult.box_width,
            FaceResult.box_height,
            FaceResult.person_external_id,
            FaceResult.similarity,
        )
        .join(FaceResult, FaceResult.job_item_id == JobItem.id)
        .where(JobItem.job_id == job_id)
        .order_by(JobItem.position, FaceResult.face_index)
    )
    for position, source, left, top, width, height, person, similarity in session.execute(
        query
    ).tuples():
        out.setdefault(position, (source, []))[1].append(
            _Face(BoundingBox(left, top, width, height), person, similarity)
        )
    return out


def _pair(before: list[_Face], after: list[_Face]) -> list[tuple[_Face | None, _Face | None]]:
    """Match faces of the same image across two runs by box overlap, best pairs first."""
    candidates = sorted(
        ((b.box.iou(a.box), i, j) for i, b in enumerate(before) for j, a in enumerate(after)),
        reverse=True,
    )
    used_b: set[int] = set()
    used_a: set[int] = set()
    pairs: list[tuple[_Face | None, _Face | None]] = []
    for iou, i, j in candidates:
        if iou < corrections.SAME_FACE_IOU or i in used_b or j in used_a:
            continue
        used_b.add(i)
        used_a.add(j)
        pairs.append((before[i], after[j]))
    pairs += [(b, None) for i, b in enumerate(before) if i not in used_b]
    pairs += [(None, a) for j, a in enumerate(after) if j not in used_a]
    return pairs


def _change(before: _Face | None, after: _Face | None) -> str | None:
    was = before.person if before else None
    now = after.person if after else None
    if was is None and now is None:
        return None
    if was is None:
        return "named"
    if now is None:
        return "unnamed"
    if was != now:
        return "renamed"
    assert before is not None and after is not None
    if abs((before.similarity or 0.0) - (after.similarity or 0.0)) >= SIMILARITY_EPSILON:
        return "similarity"
    return None


def rerun_changes(session: Session, job_id: int) -> dict[str, Any]:
    job = session.get(Job, job_id)
    if job is None or job.rerun_of_id is None:
        raise NotFoundError(f"job {job_id} is not a re-run")
    original = session.get_one(Job, job.rerun_of_id)
    old_faces, new_faces = _faces(session, original.id), _faces(session, job.id)
    changes: list[dict[str, Any]] = []
    for position in sorted(old_faces.keys() | new_faces.keys()):
        # A re-run's items keep their original's sources, so either side names the image.
        source, before_faces = old_faces.get(position, ("", []))
        source, after_faces = new_faces.get(position, (source, []))
        for before, after in _pair(before_faces, after_faces):
            kind = _change(before, after)
            if kind is None:
                continue
            box = (after or before).box  # type: ignore[union-attr]
            changes.append(
                {
                    "image": source,
                    "box": {k: round(v, 4) for k, v in box.as_dict().items()},
                    "change": kind,
                    "before": before.person if before else None,
                    "after": after.person if after else None,
                    "similarity_before": _round(before.similarity if before else None),
                    "similarity_after": _round(after.similarity if after else None),
                }
            )
    return {
        "job_id": job.id,
        "rerun_of": original.id,
        "status": job.status.value,
        "collection_version_before": original.collection_version,
        "collection_version_after": job.collection_version,
        "changes": changes,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
