"""Tagging: labels, text, moderation labels and known people for each image of a batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import delete
from sqlalchemy.orm import Session

from facetrail.jobs.base import (
    Claim,
    ImageRef,
    JobType,
    Name,
    Request,
    add_job,
    source_items,
    store_images,
    with_names,
)
from facetrail.models import Job, JobKind, TagResult
from facetrail.services.records import get_or_create_image_id
from facetrail.settings import Settings
from facetrail.tagging.operations import OPERATIONS, check_ops, run_ops

if TYPE_CHECKING:
    from facetrail.jobs.runner import Context


class TagRequest(Request):
    kind: Literal["tag"] = "tag"
    images: list[ImageRef]
    # Tagging operations to run; all of them when absent.
    ops: list[Name] | None = None


class TagJob(JobType):
    """Run the requested tagging operations on each image; one result row per operation."""

    name = "tag"
    kind = JobKind.TAG
    schema = TagRequest
    # Known people come from every public-figure collection, not from one of the job's own.
    uses_collection = False

    def create(self, session: Session, settings: Settings, request: TagRequest) -> Job:
        ops = check_ops(tuple(OPERATIONS) if request.ops is None else request.ops)
        job = Job(
            kind=self.kind,
            backend=settings.backend,
            parameters=with_names({"ops": list(ops)}, request.images),
        )
        return add_job(session, job, source_items(store_images(settings, request.images)))

    def run(self, ctx: Context, claim: Claim) -> None:
        ops: list[str] = list(claim.parameters["ops"])
        backend = ctx.backend(claim.backend, claim.backend_options)
        image = ctx.open_image(claim.source)
        results: dict[str, Any] = run_ops(ctx.settings, backend, image, ops)
        with ctx.session() as session:
            image_id = get_or_create_image_id(session, image)
            # A retried item replaces what an interrupted attempt may have written.
            session.execute(delete(TagResult).where(TagResult.job_item_id == claim.item_id))
            for op in ops:
                session.add(TagResult(job_item_id=claim.item_id, op=op, payload=results[op]))
            ctx.succeed(session, claim, image_id)
