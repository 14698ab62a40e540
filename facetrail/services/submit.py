"""Jobs submitted by other apps as plain JSON payloads (the ``facetrail.submit`` task)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from facetrail.backends import backend_options
from facetrail.errors import InvalidParameterError
from facetrail.images.scan import EnrollEntry
from facetrail.models import Job
from facetrail.services import audit
from facetrail.services.jobs import create_enroll_job, create_identify_job
from facetrail.services.records import get_collection
from facetrail.settings import Settings


def submit_job(session: Session, settings: Settings, payload: dict[str, Any]) -> Job:
    """Create the job a payload describes; the same ``request_id`` never makes a second job."""
    request_id = payload.get("request_id")
    if request_id is not None:
        existing = session.scalar(select(Job).where(Job.request_id == str(request_id)))
        if existing is not None:
            return existing
    if payload.get("actor"):
        # The app that submitted says on whose behalf; the audit log records that, not the worker.
        settings = settings.with_(actor=str(payload["actor"]))
    kind = payload.get("kind")
    collection = payload.get("collection")
    if not isinstance(collection, str):
        raise InvalidParameterError("payload needs a 'collection' name")
    if kind == "identify":
        params: dict[str, Any] = {}
        if payload.get("threshold") is not None:
            params["threshold"] = float(payload["threshold"])
        job = create_identify_job(
            session,
            collection=collection,
            sources=[str(s) for s in payload.get("images", [])],
            parameters=params,
        )
    elif kind == "enroll":
        entries = [
            EnrollEntry(source=str(e["image"]), external_id=str(e["person"]))
            for e in payload.get("entries", [])
        ]
        job = create_enroll_job(
            session,
            collection=collection,
            backend=settings.backend,
            entries=entries,
            options=backend_options(settings, settings.backend),
        )
        audit.record(
            session, settings, "enroll", get_collection(session, collection), job_id=job.id
        )
    else:
        raise InvalidParameterError(f"unknown job kind {kind!r}: use 'identify' or 'enroll'")
    job.request_id = None if request_id is None else str(request_id)
    session.flush()
    return job
