"""Sending a committed job to the workers, or running it in-process when there is no broker.

With a broker, a job is fanned out in chunks: :func:`fan_out_chunk` takes the next
``fan_out_chunk`` items that were never queued, marks them ``queued_at`` and sends one
``facetrail.run_item`` each, all before its transaction commits, then sends a
``facetrail.fan_out`` task for the rest. A redelivered fan-out (a worker killed after the commit
but before the acknowledgement) finds those items marked and sends nothing again; one killed
before the commit rolls back and its redelivery sends them again, at most one chunk twice,
which the items' idempotency absorbs.

Resume (``facetrail.run_job``, ``facetrail jobs ID --resume``) clears ``queued_at`` of every
unfinished item and fans out again: it re-queues items that were queued but never ran (a lost
broker), and a running item that gets a second delivery still ends with one result.

Without a broker the items run here, one after another; the job records this process as its
runner ("host:pid") with a heartbeat every 30 s, so a job whose process was killed shows as
interrupted (``facetrail.services.reports``).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

from sqlalchemy import select, update

from facetrail.db import session_scope
from facetrail.jobs.runner import pending_item_ids
from facetrail.models import ItemStatus, Job, JobItem
from facetrail.models.base import utcnow
from facetrail.settings import Settings
from facetrail.worker.app import app, configure

UNFINISHED = (ItemStatus.PENDING, ItemStatus.RUNNING)

# Seconds between heartbeats of an in-process runner (services/reports.py: stale after 15 min).
HEARTBEAT_EVERY = 30.0


def runner_id() -> str:
    """This process, as a job's runner: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def fan_out_chunk(settings: Settings, job_id: int, after_position: int = -1) -> int:
    """Queue the next chunk of never-queued items after ``after_position``; queue a
    ``facetrail.fan_out`` continuation when more may follow. Returns how many were queued."""
    from facetrail.worker.tasks import fan_out as fan_out_task
    from facetrail.worker.tasks import run_item

    chunk = max(1, settings.fan_out_chunk)
    with session_scope(settings) as session:
        query = (
            select(JobItem)
            .where(
                JobItem.job_id == job_id,
                JobItem.position > after_position,
                JobItem.queued_at.is_(None),
                JobItem.status.in_(UNFINISHED),
            )
            .order_by(JobItem.position)
            .limit(chunk)
            # Two deliveries of one fan-out never take the same rows (SQLite locks the database).
            .with_for_update(skip_locked=True)
        )
        items = list(session.scalars(query))
        now = utcnow()
        for item in items:
            item.queued_at = now
        session.flush()
        # Sent before the commit: a failed send rolls the marks back and the task is retried.
        for item in items:
            run_item.apply_async(args=[item.id])
        if len(items) == chunk:
            fan_out_task.apply_async(args=[job_id, items[-1].position])
    return len(items)


def requeue(settings: Settings, job_id: int) -> int:
    """Forget which unfinished items were queued, so the next fan-out sends them all again."""
    with session_scope(settings) as session:
        result = session.execute(
            update(JobItem)
            .where(JobItem.job_id == job_id, JobItem.status.in_(UNFINISHED))
            .values(queued_at=None)
        )
        return int(getattr(result, "rowcount", 0) or 0)


def run_here(settings: Settings, job_id: int, on_item: Callable[[], None] | None = None) -> int:
    """Run every unfinished item in this process (no broker), recording this process as the
    job's runner and a heartbeat after items, at most every ``HEARTBEAT_EVERY`` (a commit per
    item would cost more than it tells: a runner is stale only after 15 minutes)."""
    from facetrail.worker.tasks import run_item

    with session_scope(settings) as session:
        item_ids = pending_item_ids(session, job_id)
        job = session.get(Job, job_id)
        if job is not None and item_ids:
            job.runner, job.heartbeat_at = runner_id(), utcnow()
    last_beat = time.monotonic()
    for item_id in item_ids:
        # Same task code, in this process: the embedded default needs no services.
        run_item.apply(args=[item_id], throw=False)
        if time.monotonic() - last_beat >= HEARTBEAT_EVERY:
            last_beat = time.monotonic()
            with session_scope(settings) as session:
                session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow()))
        if on_item is not None:
            on_item()
    return len(item_ids)


def start(
    settings: Settings,
    job_id: int,
    on_item: Callable[[], None] | None = None,
    *,
    resume: bool = False,
) -> int:
    """Start a committed job (or, with ``resume``, its unfinished items again): sent to the
    workers in chunks with a broker, run here without one. Returns the items queued or run."""
    if not settings.broker_url:
        count = run_here(settings, job_id, on_item)
    else:
        if resume:
            requeue(settings, job_id)
        count = fan_out_chunk(settings, job_id)
    if count == 0:
        from facetrail.worker.unknowns import follow_up

        # No item will run to set it off: a job finished as it was created (a re-run answered
        # from stored faces) is followed up here.
        follow_up(settings, job_id)
    return count


def submit(
    settings: Settings,
    job_id: int,
    on_item: Callable[[], None] | None = None,
    *,
    resume: bool = False,
) -> int:
    """:func:`start`, with the Celery app pointed at ``settings`` first."""
    configure(app, settings)
    return start(settings, job_id, on_item, resume=resume)
