"""Jobs that other apps submit as plain JSON payloads (the ``facetrail.submit`` task).

Every payload is validated against its kind's schema before anything is written; a payload that
fails is rejected with an :class:`InvalidParameterError` (never retried) that says which fields
are wrong, and the caller answers it on the payload's ``request_id``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from facetrail.errors import InvalidParameterError
from facetrail.jobs import KINDS, job_type
from facetrail.jobs.base import Request
from facetrail.models import Job
from facetrail.settings import Settings

# Longest request id that a rejection is still answered on (a longer one is not a key we write).
MAX_ANSWERED_REQUEST_ID = 1024


def parse_payload(payload: Any) -> Request:
    """The validated request a payload describes, or an InvalidParameterError saying why not."""
    if not isinstance(payload, dict):
        raise InvalidParameterError(f"a payload is a JSON object, not {type(payload).__name__}")
    kind = payload.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise InvalidParameterError(
            f"unknown job kind {str(kind)[:40]!r}: use one of {', '.join(KINDS)}"
        )
    try:
        return job_type(kind).parse(payload)
    except ValidationError as exc:
        raise InvalidParameterError(f"invalid {kind} request: {describe(exc)}") from None


def describe(exc: ValidationError) -> str:
    """Which fields are wrong and why, without echoing the (possibly huge or hostile) input."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False)[:10]:
        where = ".".join(str(part) for part in error["loc"]) or "payload"
        problems.append(f"{where}: {error['msg']}")
    more = exc.error_count() - len(problems)
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")


def request_id_of(payload: Any) -> str | None:
    """The request id to answer a rejection on, if the payload names a usable one."""
    if not isinstance(payload, dict):
        return None
    value = payload.get("request_id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text if 0 < len(text) <= MAX_ANSWERED_REQUEST_ID else None


def submit_job(session: Session, settings: Settings, payload: Any) -> Job:
    """Create the job a payload describes; the same ``request_id`` never makes a second job."""
    request = parse_payload(payload)
    if request.request_id is not None:
        existing = session.scalar(select(Job).where(Job.request_id == request.request_id))
        if existing is not None:
            return existing
    if request.actor:
        # The app that submitted says on whose behalf; the audit log records that, not the worker.
        settings = settings.with_(actor=request.actor)
    job = job_type(request.kind).create(session, settings, request)
    job.request_id = request.request_id
    session.flush()
    return job
