"""Sending a committed job to the workers, or running it in-process when there is no broker."""

from __future__ import annotations

from collections.abc import Callable

from facetrail.db import session_scope
from facetrail.jobs.runner import pending_item_ids
from facetrail.settings import Settings
from facetrail.worker.app import app, configure


def fan_out(settings: Settings, job_id: int, on_item: Callable[[], None] | None = None) -> int:
    """Enqueue one task per unfinished item. Call only after the job's transaction committed."""
    from facetrail.worker.tasks import run_item

    with session_scope(settings) as session:
        item_ids = pending_item_ids(session, job_id)
    for item_id in item_ids:
        if settings.broker_url:
            run_item.apply_async(args=[item_id])
        else:
            # Same task code, in this process: the embedded default needs no services.
            run_item.apply(args=[item_id], throw=False)
            if on_item is not None:
                on_item()
    return len(item_ids)


def submit(settings: Settings, job_id: int, on_item: Callable[[], None] | None = None) -> int:
    configure(app, settings)
    return fan_out(settings, job_id, on_item)
