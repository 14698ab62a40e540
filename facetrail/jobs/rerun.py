"""Re-running an identification against the collection as it is now, and what changed.

A re-run is an identify job over the same images, linked to the job it repeats; its items run
as identify items (faces whose stored embeddings are still valid are searched again without
analysing the photo).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field
from sqlalchemy.orm import Session

from facetrail.backends.base import BoundingBox
from facetrail.errors import InvalidParameterError, NotFoundError
from facetrail.jobs.base import Claim, JobType, Request, add_job, collection_job
from facetrail.jobs.identify import IdentifyJob
from facetrail.models import Job, JobItem, JobKind
from facetrail.services import audit
from facetrail.services.records import get_collection_by_id
from facetrail.settings import Settings

if TYPE_CHECKING:
    from facetrail.jobs.runner import Context

# Smaller moves are rounding, not news.
SIMILARITY_EPSILON = 0.5
SAME_FACE_IOU = 0.5


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
        return job

    def run(self, ctx: Context, claim: Claim) -> None:
        # Its jobs are identify jobs, so the runner sends their items to IdentifyJob; this only
        # keeps the two in step for a caller that asks this type directly.
        IdentifyJob().run(ctx, claim)


@dataclass(frozen=True)
class _Face:
    box: BoundingBox
    person: str | None
    similarity: float | None


def _faces(item: JobItem | None) -> list[_Face]:
    if item is None:
        return []
    return [
        _Face(
            BoundingBox(f.box_left, f.box_top, f.box_width, f.box_height),
            f.person_external_id,
            f.similarity,
        )
        for f in item.faces
    ]


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
        if iou < SAME_FACE_IOU or i in used_b or j in used_a:
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
    old_items = {i.position: i for i in original.items}
    changes: list[dict[str, Any]] = []
    for item in job.items:
        for before, after in _pair(_faces(old_items.get(item.position)), _faces(item)):
            kind = _change(before, after)
            if kind is None:
                continue
            box = (after or before).box  # type: ignore[union-attr]
            changes.append(
                {
                    "image": item.source,
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
