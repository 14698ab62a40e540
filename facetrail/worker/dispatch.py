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

A broker can lose a message it was sent: Redis's transport takes a message off the queue
(BRPOP) before it records it as unacknowledged, so a worker killed in between, or a broker that
goes down in between or whose reply never reaches the worker, loses it, and that item would
wait forever. Every worker therefore runs :func:`requeue_lost` every little while
(:class:`Requeuer`): an item whose task was sent ``requeue_after`` seconds ago and has not
started is sent again, and a job whose fan-out stopped is continued. An item whose message was
only slow is delivered twice, which its idempotency absorbs.

Without a broker the items run here, one after another; the job records this process as its
runner ("host:pid") with a heartbeat every 30 s, so a job whose process was killed shows as
interrupted (``facetrail.services.reports``).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import case, func, or_, select, update

from facetrail.db import session_scope
from facetrail.jobs.runner import pending_item_ids
from facetrail.models import ItemStatus, Job, JobItem, JobStatus
from facetrail.models.base import utcnow
from facetrail.settings import Settings
from facetrail.worker.app import app, configure

log = logging.getLogger(__name__)

UNFINISHED = (ItemStatus.PENDING, ItemStatus.RUNNING)

# Seconds between heartbeats of an in-process runner (services/reports.py: stale after 15 min).
HEARTBEAT_EVERY = 30.0


def runner_id() -> str:
    """This process, as a job's runner: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def fan_out_chunk(
    settings: Settings, job_id: int, after_position: int = -1, now: datetime | None = None
) -> int:
    """Queue the next chunk of never-queued items after ``after_position``, marked ``now``;
    queue a ``facetrail.fan_out`` continuation when more may follow. Returns how many were
    queued."""
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
        now = now or utcnow()
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
        # The job is the workers' now: no longer an in-process run (shown interrupted once its
        # runner is gone, and left alone by requeue_lost).
        session.execute(update(Job).where(Job.id == job_id).values(runner=None, heartbeat_at=None))
        result = session.execute(
            update(JobItem)
            .where(JobItem.job_id == job_id, JobItem.status.in_(UNFINISHED))
            .values(queued_at=None)
        )
        return int(getattr(result, "rowcount", 0) or 0)


def requeue_lost(settings: Settings, now: datetime | None = None) -> int:
    """Send again what a lost message left waiting: items sent more than ``requeue_after``
    seconds ago that never started, and the next chunk of jobs whose fan-out stopped (nothing
    queued for that long, items never queued). Returns how many items were sent."""
    from facetrail.worker.tasks import run_item

    if settings.requeue_after <= 0:
        return 0
    now = now or utcnow()
    cutoff = now - timedelta(seconds=settings.requeue_after)
    chunk = max(1, settings.fan_out_chunk)
    # Only unfinished jobs' items: found through jobs.status, no scan of every item.
    unfinished_jobs = select(Job.id).where(
        Job.status.in_((JobStatus.PENDING, JobStatus.RUNNING)), Job.runner.is_(None)
    )
    last_queued = func.max(JobItem.queued_at)
    never_queued = func.count(
        case((JobItem.queued_at.is_(None) & (JobItem.status == ItemStatus.PENDING), 1))
    )
    # Looked for first: the items sent again below get a new mark.
    with session_scope(settings) as session:
        stalled = list(
            session.scalars(
                select(JobItem.job_id)
                .where(JobItem.job_id.in_(unfinished_jobs.where(Job.created_at < cutoff)))
                .group_by(JobItem.job_id)
                .having(never_queued > 0, or_(last_queued.is_(None), last_queued < cutoff))
            )
        )
    sent = 0
    while True:
        with session_scope(settings) as session:
            items = list(
                session.scalars(
                    select(JobItem)
                    .where(
                        JobItem.job_id.in_(unfinished_jobs),
                        JobItem.status == ItemStatus.PENDING,
                        JobItem.queued_at < cutoff,
                    )
                    .order_by(JobItem.queued_at, JobItem.id)
                    .limit(chunk)
                    # Workers sweeping at once take different rows; the new mark keeps them
                    # from sending these again for another requeue_after.
                    .with_for_update(skip_locked=True)
                )
            )
            for item in items:
                item.queued_at = now
            session.flush()
            # Sent before the commit, as fan_out_chunk does: a failed send keeps the old mark.
            for item in items:
                run_item.apply_async(args=[item.id])
        sent += len(items)
        if items:
            log.warning("sent again %s item(s) queued before %s, never started", len(items), cutoff)
        if len(items) < chunk:
            break
    for job_id in stalled:
        log.warning("job %s: fan-out stopped; continuing it", job_id)
        sent += fan_out_chunk(settings, job_id, now=now)
    return sent


class Requeuer:
    """A thread of a worker's main process that runs :func:`requeue_lost` at start and then
    every quarter of ``requeue_after`` (at most every 5 minutes), so that a lost message is
    sent again even when no task runs to notice it. Errors are logged and tried next time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.every = min(300.0, max(1.0, settings.requeue_after / 4))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="facetrail-requeuer", daemon=True)

    def start(self) -> Requeuer:
        if self.settings.requeue_after > 0:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                requeue_lost(self.settings)
            except Exception:  # the broker or the database away: next time
                log.warning("requeue_lost failed; trying again in %.0fs", self.every, exc_info=True)
            # Jitter, so that workers started together do not sweep together.
            self._stop.wait(self.every * random.uniform(0.8, 1.2))


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
