"""Celery tasks: thin functions that take ids (or a JSON payload) and call the job runner.

Task names and payloads are a public contract (see docs/tasks.md): other apps can enqueue with
``send_task`` without importing facetrail.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import TYPE_CHECKING, Any

from celery import Task
from celery.signals import task_received, worker_init, worker_ready, worker_shutdown
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import DBAPIError

from facetrail.db import session_scope
from facetrail.errors import FacetrailError, InvalidParameterError
from facetrail.jobs import readahead, runner
from facetrail.jobs.submit import request_id_of, submit_job
from facetrail.settings import Settings
from facetrail.worker.app import app, settings_of
from facetrail.worker.notify import notify_answer, notify_if_finished, notify_rejected

if TYPE_CHECKING:
    from facetrail.worker.dispatch import Requeuer

log = logging.getLogger(__name__)


_requeuers: list[Requeuer] = []

RUN_ITEM = "facetrail.run_item"


@worker_init.connect
def _start_read_ahead(**_: Any) -> None:
    """Before the pool starts, so its processes share the read-ahead folder."""
    readahead.start(settings_of(app))


@task_received.connect
def _read_ahead(request: Any = None, **_: Any) -> None:
    """In the worker's main process, as a task arrives: fetch its item's photo meanwhile."""
    if request is None or request.name != RUN_ITEM:
        return
    args, kwargs = request.args, request.kwargs
    if isinstance(args, (list, tuple)) and args:
        item_id = args[0]
    else:
        item_id = kwargs.get("item_id") if isinstance(kwargs, dict) else None
    # A malformed message is the task's to refuse; reading ahead just passes it by.
    if isinstance(item_id, int) and not isinstance(item_id, bool):
        readahead.received(item_id)


@worker_ready.connect
def _start_requeuer(**_: Any) -> None:
    """A worker's main process sends again what the broker lost (dispatch.Requeuer)."""
    from facetrail.worker.dispatch import Requeuer

    _requeuers.append(Requeuer(settings_of(app)).start())


@worker_shutdown.connect
def _stop_requeuer(**_: Any) -> None:
    while _requeuers:
        _requeuers.pop().stop()
    readahead.stop()


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, FacetrailError):
        return exc.retryable
    # A send that failed (the broker away past the publish retries) is retried like a database
    # outage; the retry is itself a send, which may fail too: then the message's redelivery or
    # the workers' requeue (dispatch.requeue_lost) takes over.
    return isinstance(exc, (DBAPIError, BrokerError))


def _retry_or_raise(task: Task[Any, Any], exc: Exception, what: str) -> None:
    """Retry with backoff when the failure may pass (backend or database away)."""
    settings = settings_of(task.app)
    if not _retryable(exc) or task.request.retries >= settings.task_max_retries:
        raise exc
    countdown = min(60, 2 ** (task.request.retries + 1))
    log.warning("%s: %s; retry %s in %ss", what, exc, task.request.retries + 1, countdown)
    raise task.retry(exc=exc, countdown=countdown) from exc


def _run_once(settings: Settings, item_id: int, *, final: bool) -> str:
    from facetrail.worker.unknowns import follow_up

    outcome = runner.run_item(settings, item_id, final_attempt=final)
    # Only the item that finished its job (or a redelivery of a finished one) notifies, and
    # sends what a finished job sets off (clustering its unknown faces...).
    if outcome.job_id is not None and outcome.job_finished:
        notify_if_finished(settings, outcome.job_id)
        follow_up(settings, outcome.job_id)
    return str(outcome.status)


def _run_inline(settings: Settings, item_id: int) -> str:
    """No broker: the same code in this process, retried here after short pauses."""
    for attempt in itertools.count():
        final = attempt >= settings.task_max_retries
        try:
            return _run_once(settings, item_id, final=final)
        except (FacetrailError, DBAPIError) as exc:
            if final or not _retryable(exc):
                raise
            delay = min(2.0, 0.25 * 2**attempt)
            log.warning("item %s: %s; retry %s in %ss", item_id, exc, attempt + 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


@app.task(name=RUN_ITEM, bind=True, acks_late=True, max_retries=None)
def run_item(self: Task[Any, Any], item_id: int) -> str:
    """Run one job item (one image). Idempotent per item."""
    settings = settings_of(self.app)
    if self.request.is_eager:
        return _run_inline(settings, item_id)
    final = self.request.retries >= settings.task_max_retries
    try:
        return _run_once(settings, item_id, final=final)
    except (FacetrailError, DBAPIError) as exc:
        _retry_or_raise(self, exc, f"item {item_id}")
        raise


@app.task(name="facetrail.submit", bind=True, acks_late=True, max_retries=None)
def submit(self: Task[Any, Any], payload: Any) -> int:
    """Create a job from a JSON payload (see docs/tasks.md) and fan it out."""
    from facetrail.worker.dispatch import start

    settings = settings_of(self.app)
    try:
        with session_scope(settings) as session:
            job_id = submit_job(session, settings, payload).id
        # The first chunk here; the rest by facetrail.fan_out tasks. A redelivered submit finds
        # its job by request id and its items already queued.
        start(settings, job_id)
        notify_if_finished(settings, job_id)  # an empty job is finished at once
        return job_id
    except (FacetrailError, DBAPIError, BrokerError) as exc:
        request_id = request_id_of(payload)
        if isinstance(exc, FacetrailError) and not exc.retryable:
            # A payload that cannot become a job is answered, never retried.
            notify_rejected(settings, request_id, exc.message)
            log.warning("submit %s rejected: %s", request_id, exc.message)
            return 0
        _retry_or_raise(self, exc, f"submit {request_id}")
        raise


@app.task(name="facetrail.fan_out", bind=True, acks_late=True, max_retries=None)
def fan_out(self: Task[Any, Any], job_id: int, after_position: int = -1) -> int:
    """Queue the next chunk of a job's never-queued items, then continue itself."""
    from facetrail.worker.dispatch import fan_out_chunk

    settings = settings_of(self.app)
    try:
        return fan_out_chunk(settings, job_id, after_position)
    except (DBAPIError, BrokerError) as exc:
        _retry_or_raise(self, exc, f"fan-out of job {job_id}")
        raise


@app.task(name="facetrail.run_job", acks_late=True)
def run_job(job_id: int) -> int:
    """Resume: queue every unfinished item of a job again, queued before or not (after a lost
    broker, say), in chunks. Finished items are skipped; a second delivery of a running item
    still ends with one result."""
    from facetrail.worker.dispatch import start

    return start(settings_of(app), job_id, resume=True)


@app.task(name="facetrail.search_past", bind=True, acks_late=True, max_retries=None)
def search_past(self: Task[Any, Any], payload: Any) -> int:
    """Search a collection's past faces (docs/past.md); the answer goes to the payload's
    ``request_id`` as job reports do. Returns the number of matches."""
    from facetrail.services import past

    settings = settings_of(self.app)
    request_id = request_id_of(payload)
    if request_id is None:
        log.warning("search_past without a request_id: nowhere to answer, not run")
        return 0
    try:
        request = past.parse_request(payload)
        image = past.request_image(settings, request, local=False)
        with session_scope(settings) as session:
            answer = past.run_request(session, settings, request, image)
    except (FacetrailError, DBAPIError) as exc:
        if isinstance(exc, FacetrailError) and not exc.retryable:
            # Bad payloads and bad photos are answered, never retried.
            status = "rejected" if isinstance(exc, InvalidParameterError) else "failed"
            notify_answer(
                settings, request_id, {"status": status, "error": exc.message, "code": exc.code}
            )
            return 0
        _retry_or_raise(self, exc, f"search_past {request_id}")
        raise
    notify_answer(settings, request_id, {"status": "succeeded", **answer})
    return len(answer["matches"])
