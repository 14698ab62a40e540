"""Celery tasks: thin functions that take ids and call the services.

Task names and payloads are a public contract (see docs/tasks.md): other apps can enqueue with
``send_task`` without importing facetrail.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from facetrail.backends import recognizer_for
from facetrail.backends.base import Recognizer
from facetrail.errors import FacetrailError
from facetrail.services.items import run_item as run_item_service
from facetrail.worker.app import app, settings_of

log = logging.getLogger(__name__)


@app.task(name="facetrail.run_item", bind=True, acks_late=True, max_retries=None)
def run_item(self: Task[Any, Any], item_id: int) -> str:
    """Run one job item (enroll or identify one image). Idempotent per item."""
    settings = settings_of(self.app)

    def recognizer(backend: str, options: dict[str, Any]) -> Recognizer:
        return recognizer_for(settings, backend, options)

    final = self.request.retries >= settings.task_max_retries
    try:
        return str(run_item_service(settings, item_id, recognizer, final_attempt=final))
    except FacetrailError as exc:
        if not exc.retryable or final:
            raise
        countdown = min(60, 2 ** (self.request.retries + 1))
        log.warning(
            "item %s: %s; retry %s in %ss", item_id, exc, self.request.retries + 1, countdown
        )
        raise self.retry(exc=exc, countdown=countdown) from exc


@app.task(name="facetrail.run_job", acks_late=True)
def run_job(job_id: int) -> int:
    """Fan a job out into one ``facetrail.run_item`` task per unfinished item."""
    from facetrail.worker.dispatch import fan_out

    return fan_out(settings_of(app), job_id)
