"""Reading jobs back as plain dicts: the shape ``--json`` prints and the Python API returns."""

from __future__ import annotations

import os
import socket
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from facetrail.errors import NotFoundError
from facetrail.models import Collection, Job, JobItem, JobStatus
from facetrail.models.base import utcnow

# An in-process runner on another host that has not finished an item for this long is taken
# for gone (on this host, whether its process is alive is checked directly).
RUNNER_STALE_AFTER = timedelta(minutes=15)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True


def interrupted(job: Job) -> bool:
    """Whether an unfinished job's in-process runner is gone (killed, crashed, machine off)."""
    if job.status not in (JobStatus.PENDING, JobStatus.RUNNING) or not job.runner:
        return False
    host, _, pid = job.runner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return not _pid_alive(int(pid))
    beat = job.heartbeat_at
    if beat is None:
        return False
    if beat.tzinfo is None:  # SQLite gives naive UTC back
        beat = beat.replace(tzinfo=UTC)
    return utcnow() - beat > RUNNER_STALE_AFTER


def resume_command(job_id: int) -> str:
    return f"facetrail jobs {job_id} --resume"


def job_summary(session: Session, job: Job) -> dict[str, Any]:
    collection = session.get(Collection, job.collection_id) if job.collection_id else None
    summary: dict[str, Any] = {
        "job_id": job.id,
        "kind": job.kind.value,
        "status": job.status.value,
        "backend": job.backend,
        "model_version": job.model_version,
        "collection": collection.name if collection else job.parameters.get("collection"),
        "collection_version": job.collection_version,
        "parameters": job.parameters,
        "total": job.total_items,
        "succeeded": job.succeeded_items,
        "failed": job.failed_items,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "error": job.error,
        "rerun_of": job.rerun_of_id,
    }
    if interrupted(job):
        # Its process is gone: nothing will finish it until someone resumes it.
        summary["status"] = "interrupted"
        summary["runner"] = job.runner
        summary["resume"] = resume_command(job.id)
    if job.kind.value == "reindex":
        summary["switched"] = bool(job.parameters.get("switched"))
    return summary


def job_report(session: Session, job_id: int) -> dict[str, Any]:
    job = session.scalar(
        select(Job)
        .where(Job.id == job_id)
        .options(
            selectinload(Job.items).selectinload(JobItem.faces),
            selectinload(Job.items).selectinload(JobItem.tags),
        )
    )
    if job is None:
        raise NotFoundError(f"job {job_id} does not exist")
    report = job_summary(session, job)
    report["images"] = [_item(item) for item in job.items]
    return report


def _item(item: JobItem) -> dict[str, Any]:
    out: dict[str, Any] = {
        "image": item.source,
        "status": item.status.value,
        "error": item.error,
        "error_code": item.error_code,
    }
    if item.person_external_id is not None:
        out["person"] = item.person_external_id
    if item.job.kind.value == "tag":
        out["results"] = {t.op: t.payload for t in item.tags}
        return out
    out["faces"] = [
        {
            # What corrections and searches of the past name a face by.
            "face_result_id": f.id,
            "box": {
                "left": round(f.box_left, 4),
                "top": round(f.box_top, 4),
                "width": round(f.box_width, 4),
                "height": round(f.box_height, 4),
            },
            "confidence": round(f.confidence, 2),
            "person": f.person_external_id,
            "similarity": None if f.similarity is None else round(f.similarity, 2),
            "candidates": f.candidates,
            **({"attributes": f.attributes} if f.attributes is not None else {}),
        }
        for f in item.faces
    ]
    return out


def list_jobs(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    jobs = session.scalars(select(Job).order_by(Job.id.desc()).limit(limit)).all()
    return [job_summary(session, j) for j in jobs]
