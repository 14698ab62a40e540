"""Creating jobs and rolling their status up from their items."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facetrail.models import ItemStatus, Job, JobItem, JobKind, JobStatus
from facetrail.models.base import utcnow
from facetrail.services.records import get_collection, get_or_create_collection
from facetrail.tagging.operations import check_ops


@dataclass(frozen=True)
class EnrollEntry:
    source: str
    external_id: str


def create_enroll_job(
    session: Session,
    *,
    collection: str,
    backend: str,
    entries: Sequence[EnrollEntry],
    options: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
) -> Job:
    coll = get_or_create_collection(session, collection, backend, options)
    job = Job(
        kind=JobKind.ENROLL,
        backend=backend,
        collection_id=coll.id,
        collection_version=coll.version,
        model_version=coll.model_version,
        parameters={"collection": collection, **(parameters or {})},
    )
    items = [
        JobItem(position=i, source=e.source, person_external_id=e.external_id)
        for i, e in enumerate(entries)
    ]
    return add_job(session, job, items)


def create_identify_job(
    session: Session,
    *,
    collection: str,
    sources: Sequence[str],
    parameters: dict[str, Any] | None = None,
) -> Job:
    coll = get_collection(session, collection)
    job = Job(
        kind=JobKind.IDENTIFY,
        backend=coll.backend,
        collection_id=coll.id,
        collection_version=coll.version,
        model_version=coll.model_version,
        parameters={"collection": collection, **(parameters or {})},
    )
    return add_job(session, job, [JobItem(position=i, source=s) for i, s in enumerate(sources)])


def create_tag_job(
    session: Session,
    *,
    sources: Sequence[str],
    ops: Sequence[str],
    backend: str,
    parameters: dict[str, Any] | None = None,
) -> Job:
    wanted = check_ops(ops)
    job = Job(
        kind=JobKind.TAG,
        backend=backend,
        parameters={"ops": list(wanted), **(parameters or {})},
    )
    return add_job(session, job, [JobItem(position=i, source=s) for i, s in enumerate(sources)])


def add_job(session: Session, job: Job, items: list[JobItem]) -> Job:
    """Attach ``items`` (``total_items`` follows them), add the job and give it an id."""
    job.items = items
    job.total_items = len(items)
    session.add(job)
    finish_if_empty(job)
    session.flush()
    return job


def finish_if_empty(job: Job) -> None:
    if job.total_items == 0:
        job.status = JobStatus.SUCCEEDED
        job.started_at = job.finished_at = utcnow()


def rollup(session: Session, job_id: int) -> Job:
    """Recount a job's items under a row lock, so concurrent workers never lose a count."""
    job = session.execute(select(Job).where(Job.id == job_id).with_for_update()).scalar_one()
    counts = dict(
        session.execute(
            select(JobItem.status, func.count())
            .where(JobItem.job_id == job_id)
            .group_by(JobItem.status)
        )
        .tuples()
        .all()
    )
    job.succeeded_items = counts.get(ItemStatus.SUCCEEDED, 0)
    job.failed_items = counts.get(ItemStatus.FAILED, 0)
    done = job.succeeded_items + job.failed_items
    if done >= job.total_items:
        if job.failed_items == 0:
            job.status = JobStatus.SUCCEEDED
        elif job.succeeded_items == 0:
            job.status = JobStatus.FAILED
        else:
            job.status = JobStatus.PARTIAL
        job.finished_at = job.finished_at or utcnow()
    elif job.status == JobStatus.PENDING:
        job.status = JobStatus.RUNNING
    return job


def pending_item_ids(session: Session, job_id: int) -> list[int]:
    return list(
        session.scalars(
            select(JobItem.id)
            .where(JobItem.job_id == job_id, JobItem.status != ItemStatus.SUCCEEDED)
            .where(JobItem.status != ItemStatus.FAILED)
            .order_by(JobItem.position)
        )
    )
