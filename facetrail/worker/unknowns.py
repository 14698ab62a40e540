"""Celery tasks for unknown faces (docs/tasks.md), and what a finished job sets off.

:func:`follow_up` runs after the last item of a job commits (``facetrail.run_item``) or when a
job finished as it was created (a re-run answered from stored faces, see
``facetrail.worker.dispatch.start``): a finished identify job sends
``facetrail.unknowns.cluster``, a finished enrollment that names a cluster sends
``facetrail.unknowns.named``. Both are idempotent, so a second delivery, or two last items
finishing together, change nothing.

The other tasks take one JSON payload each, validated before anything is done, and call the
Python API (:class:`facetrail.api.Facetrail`), so a task does what the CLI does. An app learns
the answer on the Redis list ``facetrail:done:<request_id>`` when the payload has a
``request_id``; a payload that cannot be done answers ``{"status": "rejected", "error": ...}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from celery import Task
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import DBAPIError

from facetrail.db import session_scope
from facetrail.errors import FacetrailError, InvalidParameterError
from facetrail.jobs.base import CollectionName, Name, RequestId
from facetrail.jobs.submit import describe, request_id_of
from facetrail.models import Job, JobKind, JobStatus
from facetrail.services import unknowns
from facetrail.settings import Settings
from facetrail.worker.app import app, settings_of
from facetrail.worker.notify import notify_answer

log = logging.getLogger(__name__)

FINISHED = (JobStatus.SUCCEEDED, JobStatus.PARTIAL, JobStatus.FAILED)


def follow_up(settings: Settings, job_id: int) -> None:
    """Send what a finished job sets off. It never fails the job: a clustering that could not
    be sent is logged, and ``facetrail unknowns cluster`` catches it up."""
    try:
        with session_scope(settings) as session:
            job = session.get(Job, job_id)
            if job is None or job.status not in FINISHED or job.collection_id is None:
                return
            kind = job.kind
            naming = "unknown_cluster" in (job.parameters or {})
        if kind == JobKind.IDENTIFY:
            cluster.apply_async(args=[job_id])
        elif kind == JobKind.ENROLL and naming:
            named.apply_async(args=[job_id])
    except Exception:
        log.exception("the follow-up of job %s failed", job_id)


def _retry(task: Task[Any, Any], exc: Exception, what: str) -> None:
    from facetrail.worker.tasks import _retry_or_raise

    _retry_or_raise(task, exc, what)


@app.task(name="facetrail.unknowns.cluster", bind=True, acks_late=True, max_retries=None)
def cluster(self: Task[Any, Any], job_id: int) -> dict[str, Any]:
    """Cluster the unknown faces of a finished identify job (a re-run: take the faces it
    named out of clusters)."""
    settings = settings_of(self.app)
    try:
        with session_scope(settings) as session:
            return unknowns.cluster_job(session, settings, job_id)
    except (FacetrailError, DBAPIError) as exc:
        if self.request.is_eager:
            raise
        _retry(self, exc, f"clustering of job {job_id}")
        raise


@app.task(name="facetrail.unknowns.named", bind=True, acks_late=True, max_retries=None)
def named(self: Task[Any, Any], job_id: int) -> list[int]:
    """A naming enrollment finished: mark the cluster named and re-run the jobs its faces
    came from (each re-run is started after the commit that creates it)."""
    from facetrail.worker.dispatch import start

    settings = settings_of(self.app)
    try:
        with session_scope(settings) as session:
            reruns = unknowns.finish_naming(session, settings, job_id)
        for rerun in reruns:
            start(settings, rerun)
        return reruns
    except (FacetrailError, DBAPIError) as exc:
        if self.request.is_eager:
            raise
        _retry(self, exc, f"naming by job {job_id}")
        raise


# Payload tasks -------------------------------------------------------------------------------
def _cluster_ref(value: str | int) -> str:
    try:
        return f"unknown-{unknowns.cluster_id(value)}"
    except InvalidParameterError as exc:
        raise ValueError(exc.message) from None  # pydantic reports ValueErrors per field


ClusterRef = Annotated[str | int, AfterValidator(_cluster_ref)]


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    collection: CollectionName
    request_id: RequestId | None = None
    # On whose behalf an app asks; the audit log records it.
    actor: Name | None = None


class ListPayload(Payload):
    everything: bool = False


class ShowPayload(Payload):
    cluster: ClusterRef
    # Also draw its contact sheet into the image store; the answer's "sheet" is upload://...
    sheet: bool = False


class NamePayload(Payload):
    cluster: ClusterRef
    person: Name


class MergePayload(Payload):
    source: ClusterRef
    target: ClusterRef


class SplitPayload(Payload):
    cluster: ClusterRef
    faces: list[Annotated[int, Field(ge=1, strict=True)]] | None = None


class ErasePayload(Payload):
    cluster: ClusterRef


P = TypeVar("P", bound=Payload)


def answer(settings: Settings, request_id: str | None, result: dict[str, Any]) -> None:
    if request_id is not None:
        notify_answer(settings, request_id, result)


def _act(
    task: Task[Any, Any],
    payload: Any,
    schema: type[P],
    action: Callable[[Any, P], dict[str, Any]],
) -> dict[str, Any]:
    """Validate ``payload``, run ``action(api, request)`` and answer on the request id."""
    from facetrail.api import Facetrail

    settings = settings_of(task.app)
    try:
        request = schema.model_validate(payload)
    except ValidationError as exc:
        answer(settings, request_id_of(payload), {"status": "rejected", "error": describe(exc)})
        return {}
    if request.actor:
        settings = settings.with_(actor=request.actor)
    try:
        result = action(Facetrail(settings), request)
    except (FacetrailError, DBAPIError) as exc:
        if isinstance(exc, FacetrailError) and not exc.retryable:
            answer(settings, request.request_id, {"status": "rejected", "error": exc.message})
            return {}
        if task.request.is_eager:
            raise
        _retry(task, exc, f"{task.name} {request.request_id}")
        raise
    answer(settings, request.request_id, {"status": "done", **result})
    return result


@app.task(name="facetrail.unknowns.list", bind=True, acks_late=True, max_retries=None)
def list_(self: Task[Any, Any], payload: Any) -> dict[str, Any]:
    return _act(
        self,
        payload,
        ListPayload,
        lambda api, r: api.unknowns(r.collection, everything=r.everything),
    )


@app.task(name="facetrail.unknowns.show", bind=True, acks_late=True, max_retries=None)
def show(self: Task[Any, Any], payload: Any) -> dict[str, Any]:
    def action(api: Any, r: ShowPayload) -> dict[str, Any]:
        shown: dict[str, Any] = api.unknown(r.collection, r.cluster)
        if r.sheet:
            shown["sheet"] = api.store_contact_sheet(r.collection, r.cluster)
        return shown

    return _act(self, payload, ShowPayload, action)


@app.task(name="facetrail.unknowns.name", bind=True, acks_late=True, max_retries=None)
def name(self: Task[Any, Any], payload: Any) -> dict[str, Any]:
    # A worker must not wait for other tasks: the answer names the re-runs to wait for.
    return _act(
        self,
        payload,
        NamePayload,
        lambda api, r: api.name_unknown(r.collection, r.cluster, r.person, wait=False),
    )


@app.task(name="facetrail.unknowns.merge", bind=True, acks_late=True, max_retries=None)
def merge(self: Task[Any, Any], payload: Any) -> dict[str, Any]:
    return _act(
        self,
        payload,
        MergePayload,
        lambda api, r: api.merge_unknowns(r.collection, r.source, r.target),
    )


@app.task(name="facetrail.unknowns.split", bind=True, acks_late=True, max_retries=None)
def split(self: Task[Any, Any], payload: Any) -> dict[str, Any]:
    return _act(
        self,
        payload,
        SplitPayload,
        lambda api, r: api.split_unknown(r.collection, r.cluster, r.faces),
    )


@app.task(name="facetrail.unknowns.erase", bind=True, acks_late=True, max_retries=None)
def erase(self: Task[Any, Any], payload: Any) -> dict[str, Any]:
    return _act(
        self, payload, ErasePayload, lambda api, r: api.erase_unknown(r.collection, r.cluster)
    )
