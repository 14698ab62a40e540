"""Telling the app that submitted a job that it finished, through the Redis broker.

The report is copied to ``facetrail:done:<request_id>`` for ``notify_ttl`` seconds. The job and
its results stay in facetrail's database; this is only the doorbell.
"""

from __future__ import annotations

import json

from facetrail.db import session_scope
from facetrail.models import Job, JobStatus
from facetrail.services.reports import job_report
from facetrail.settings import Settings

FINISHED = {JobStatus.SUCCEEDED, JobStatus.PARTIAL, JobStatus.FAILED}


def done_key(request_id: str) -> str:
    return f"facetrail:done:{request_id}"


def _push(settings: Settings, request_id: str, report: dict[str, object]) -> None:
    import redis

    client = redis.Redis.from_url(settings.broker_url)
    try:
        key = done_key(request_id)
        # Two items finishing together may both ring; a waiter reads the first copy.
        client.rpush(key, json.dumps(report, default=str))
        client.expire(key, settings.notify_ttl)
    finally:
        client.close()


def notify_rejected(settings: Settings, request_id: str | None, message: str) -> None:
    """A submission that cannot become a job still answers, so its sender stops waiting."""
    if request_id is None or not settings.broker_url.startswith(("redis://", "rediss://")):
        return
    _push(settings, request_id, {"request_id": request_id, "status": "rejected", "error": message})


def notify_answer(settings: Settings, request_id: str, answer: dict[str, object]) -> bool:
    """An answer that is no job's report (a search of the past) on the same doorbell."""
    if not settings.broker_url.startswith(("redis://", "rediss://")):
        return False
    _push(settings, request_id, {**answer, "request_id": request_id})
    return True


def notify_if_finished(settings: Settings, job_id: int) -> bool:
    if not settings.broker_url.startswith(("redis://", "rediss://")):
        return False
    with session_scope(settings) as session:
        job = session.get(Job, job_id)
        if job is None or job.request_id is None or job.status not in FINISHED:
            return False
        request_id = job.request_id
        report = job_report(session, job_id)
    report["request_id"] = request_id
    _push(settings, request_id, report)
    return True
