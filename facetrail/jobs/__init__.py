"""Jobs by kind: one module per kind, one registry.

``KINDS`` maps a kind's name (as payloads and ``Job.kind`` say it) to its :class:`JobType`,
which validates requests, creates jobs and runs their items. Adding a kind is one module and
one line here.

    from facetrail.jobs import job_type
    jt = job_type("identify")
    job = jt.create(session, settings, jt.schema(collection="band", images=["a.jpg"]))
"""

from __future__ import annotations

from facetrail.errors import InvalidParameterError
from facetrail.jobs.base import JobType
from facetrail.jobs.enroll import EnrollJob
from facetrail.jobs.identify import IdentifyJob
from facetrail.jobs.reindex import ReindexJob
from facetrail.jobs.rerun import RerunJob
from facetrail.jobs.tag import TagJob

KINDS: dict[str, JobType] = {
    jt.name: jt for jt in (EnrollJob(), IdentifyJob(), TagJob(), ReindexJob(), RerunJob())
}


def job_type(kind: str) -> JobType:
    """The job type registered as ``kind`` (a ``JobKind`` works too: it is a str)."""
    try:
        return KINDS[str(kind)]
    except KeyError:
        raise InvalidParameterError(
            f"unknown job kind {kind!r}: use one of {', '.join(KINDS)}"
        ) from None


__all__ = ["KINDS", "JobType", "job_type"]
