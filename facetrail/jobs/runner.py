"""The life of one job item, the same for every kind: claim, run, succeed or fail, roll up.

An item is the idempotency unit: a finished item is never redone, and a retried one replaces
whatever a previous attempt wrote, so a killed worker neither loses nor duplicates results.
What an item does is its kind's :meth:`JobType.run`, found through the registry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    Integer,
    Update,
    bindparam,
    case,
    delete,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from facetrail.backends import backend_for
from facetrail.backends.base import Backend
from facetrail.db import session_scope
from facetrail.errors import (
    BackendUnavailableError,
    FacetrailError,
    FetchError,
    FetchTimeoutError,
    NotFoundError,
)
from facetrail.images import LoadedImage, open_bytes, open_image
from facetrail.images.opener import scheme_of
from facetrail.jobs import job_type, readahead
from facetrail.jobs.base import TRUSTED_PATHS, Claim
from facetrail.models import Collection, FaceResult, ItemStatus, Job, JobItem, JobStatus, TagResult
from facetrail.models.base import table, utcnow
from facetrail.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What a kind's ``run`` gets besides its claim: settings, backends, images, sessions.

    Images are opened as the claim allows: local files anywhere only for jobs a local user
    created (``trusted_paths``), else under the image roots; URL fetches within what is left
    of the item's fetch budget.
    """

    settings: Settings
    claim: Claim
    # Set by ``succeed``: whether the job had no unfinished item left after this one.
    job_finished: bool = False

    def backend(self, name: str, options: dict[str, object]) -> Backend:
        return backend_for(self.settings, name, dict(options))

    def open_image(self, source: str) -> LoadedImage:
        ahead = readahead.take(self.claim.item_id, source)
        if ahead is not None:
            return open_bytes(self.settings, ahead, source=source)
        local = bool(self.claim.parameters.get(TRUSTED_PATHS))
        if scheme_of(source) not in ("http", "https"):
            return open_image(self.settings, source, local=local)
        budget = self.settings.fetch_item_budget
        left = budget - self.claim.fetch_seconds
        if left <= 0:
            raise FetchTimeoutError(
                f"{source}: the item's fetch budget of {budget:g}s is spent", retryable=False
            )
        started = time.monotonic()
        try:
            return open_image(self.settings, source, local=local, deadline=started + left)
        except FetchError as exc:
            if not exc.retryable:
                raise
            # Failed fetches count against the budget over every attempt of this item.
            spent = self._spend(time.monotonic() - started)
            if spent >= budget:
                raise FetchTimeoutError(
                    f"{source}: gave up after {spent:.1f}s of fetching, the item's fetch budget "
                    f"(FACETRAIL_FETCH_ITEM_BUDGET={budget:g}s); last error: {exc.message}",
                    retryable=False,
                ) from None
            raise

    def _spend(self, seconds: float) -> float:
        with session_scope(self.settings) as session:
            item = session.get_one(JobItem, self.claim.item_id)
            item.fetch_seconds = (item.fetch_seconds or 0.0) + seconds
            spent = item.fetch_seconds
        self.claim = replace(self.claim, fetch_seconds=spent)
        return spent

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope(self.settings) as session:
            yield session

    def succeed(self, session: Session, claim: Claim, image_id: int | None) -> JobStatus:
        """Mark the claimed item done, in the transaction that wrote its results; returns its
        job's status after it."""
        status = finish_item(
            session,
            claim.item_id,
            claim.job_id,
            ItemStatus.SUCCEEDED,
            image_id=image_id,
            error=None,
            error_code=None,
        )
        if status is None:
            # Another delivery finished it meanwhile (or it was erased): its results stand,
            # so this attempt's roll back.
            raise AlreadyFinishedError(claim.job_id)
        self.job_finished = status.finished
        return status


class AlreadyFinishedError(Exception):
    """The item finished in another transaction while this attempt ran."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"an item of job {job_id} had finished already")
        self.job_id = job_id


@dataclass(frozen=True)
class Outcome:
    """How an item ended, and what the caller needs for notifying without another query."""

    status: ItemStatus
    job_id: int | None  # None: no such item
    job_finished: bool  # the job has no unfinished item left (True where not known)


def run_item(settings: Settings, item_id: int, *, final_attempt: bool = True) -> Outcome:
    """Run one item. Raises a retryable FacetrailError when the caller should try again."""
    try:
        with session_scope(settings) as session:
            claimed = claim(session, item_id)
        if isinstance(claimed, int):  # already finished by an earlier delivery
            return Outcome(ItemStatus.SUCCEEDED, claimed, job_finished=True)
        ctx = Context(settings, claimed)
        job_type(claimed.kind).run(ctx, claimed)
        return Outcome(ItemStatus.SUCCEEDED, claimed.job_id, ctx.job_finished)
    except AlreadyFinishedError as exc:
        return Outcome(ItemStatus.SUCCEEDED, exc.job_id, job_finished=True)
    except (OperationalError, DBAPIError) as exc:
        # The database went away: nothing was committed for this item, so try again later.
        raise BackendUnavailableError(f"database unavailable: {exc.orig}") from exc
    except FacetrailError as exc:
        if exc.retryable and not final_attempt:
            raise
        return fail(settings, item_id, exc.code, exc.message)
    except Exception as exc:  # an unexpected bug must fail one item, not the batch
        log.exception("item %s failed unexpectedly", item_id)
        return fail(settings, item_id, "internal", f"{type(exc).__name__}: {exc}")


# The statements every item runs are built once, on the tables (Core): building and keying a
# statement, and the ORM's handling of it, cost more CPU than running it.
_items, _jobs, _collections = table(JobItem), table(Job), table(Collection)
# What a claim reads: item, job and collection in one statement, only the columns a run needs.
_CLAIMED = (
    select(
        _items.c.status,
        _items.c.attempts,
        _items.c.position,
        _items.c.source,
        _items.c.person_external_id,
        _items.c.fetch_seconds,
        _jobs.c.id.label("job_id"),
        _jobs.c.kind,
        _jobs.c.status.label("job_status"),
        _jobs.c.started_at.label("job_started_at"),
        _jobs.c.backend.label("job_backend"),
        _jobs.c.parameters,
        _jobs.c.rerun_of_id,
        _collections.c.id.label("collection_id"),
        _collections.c.backend,
        _collections.c.backend_options,
        _collections.c.backend_collection_id,
        _collections.c.model_version,
    )
    .select_from(
        _items.join(_jobs, _items.c.job_id == _jobs.c.id).outerjoin(
            _collections, _collections.c.id == _jobs.c.collection_id
        )
    )
    .where(_items.c.id == bindparam("item_id"))
)
_START = (
    update(_items)
    .where(_items.c.id == bindparam("item_id"))
    .values(
        status=ItemStatus.RUNNING,
        attempts=bindparam("v_attempts", type_=Integer),
        started_at=bindparam("v_now", type_=_items.c.started_at.type),
    )
)


def claim(session: Session, item_id: int) -> Claim | int:
    """Mark an unfinished item running and return what its run needs (or, when it finished
    already, its job's id)."""
    row = session.execute(_CLAIMED, {"item_id": item_id}).first()
    if row is None:
        raise NotFoundError(f"job item {item_id} does not exist")
    if row.status in FINISHED:
        return int(row.job_id)
    now = utcnow()
    attempts = row.attempts + 1
    session.execute(_START, {"item_id": item_id, "v_attempts": attempts, "v_now": now})
    if row.job_started_at is None or row.job_status == JobStatus.PENDING:
        # Running items are not counted, so the counts stand; only a pending job changes
        # status (a racing claim writes the same value).
        session.execute(_START_JOB, {"job_id": row.job_id, "v_now": now})
    kind = job_type(row.kind.value)
    backend, options = row.job_backend, {}
    collection_id = backend_collection_id = model_version = None
    if kind.uses_collection:
        if row.collection_id is None:
            raise NotFoundError(f"the collection of job {row.job_id} was deleted")
        backend, options = row.backend, dict(row.backend_options)
        collection_id, backend_collection_id = row.collection_id, row.backend_collection_id
        model_version = row.model_version
    return Claim(
        item_id=item_id,
        job_id=row.job_id,
        kind=kind.name,
        position=row.position,
        source=row.source,
        person_external_id=row.person_external_id,
        backend=backend,
        backend_options=options,
        collection_id=collection_id,
        backend_collection_id=backend_collection_id,
        collection_model_version=model_version,
        parameters=dict(row.parameters),
        rerun_of_id=row.rerun_of_id,
        fetch_seconds=row.fetch_seconds or 0.0,
        attempts=attempts,
    )


def fail(settings: Settings, item_id: int, code: str, message: str) -> Outcome:
    """Record why an item failed, dropping anything an interrupted attempt wrote."""
    with session_scope(settings) as session:
        job_id = session.scalar(select(JobItem.job_id).where(JobItem.id == item_id))
        if job_id is None:
            return Outcome(ItemStatus.FAILED, None, job_finished=False)
        status = finish_item(
            session, item_id, job_id, ItemStatus.FAILED, error_code=code, error=message
        )
        if status is None:  # finished meanwhile by another delivery: that outcome stands
            return Outcome(ItemStatus.FAILED, job_id, job_finished=True)
        session.execute(delete(FaceResult).where(FaceResult.job_item_id == item_id))
        session.execute(delete(TagResult).where(TagResult.job_item_id == item_id))
        return Outcome(ItemStatus.FAILED, job_id, status.finished)


FINISHED = (ItemStatus.SUCCEEDED, ItemStatus.FAILED)


def finish_item(
    session: Session, item_id: int, job_id: int, status: ItemStatus, **values: Any
) -> JobStatus | None:
    """Mark an unfinished item ``status`` (with ``values``) and count it in its job: two
    UPDATEs, the job's row locked until commit, so concurrent workers never lose a count.
    Returns the job's new status; None, changing nothing, where the item had finished."""
    now = utcnow()
    marked = session.execute(
        _finishing(tuple(sorted(values))),
        {
            "item_id": item_id,
            "v_status": status,
            "v_now": now,
            **{f"v_{name}": value for name, value in values.items()},
        },
    )
    if not cast("CursorResult[Any]", marked).rowcount:
        return None
    counts = {
        "job_id": job_id,
        "v_succeeded": int(status == ItemStatus.SUCCEEDED),
        "v_failed": int(status == ItemStatus.FAILED),
        "v_now": now,
    }
    return JobStatus(session.execute(_COUNT, counts).scalar_one())


@cache
def _finishing(columns: tuple[str, ...]) -> Update:
    """An item's end, setting ``columns`` too (parameters ``v_<column>``), if unfinished."""
    return (
        update(_items)
        .where(_items.c.id == bindparam("item_id"), _items.c.status.not_in(FINISHED))
        .values(
            status=bindparam("v_status", type_=_items.c.status.type),
            finished_at=bindparam("v_now", type_=_items.c.finished_at.type),
            **{name: bindparam(f"v_{name}", type_=_items.c[name].type) for name in columns},
        )
    )


def _status(status: JobStatus) -> Any:
    """A job status as a SQL value of the column's own type (for CASE)."""
    return literal(status, _jobs.c.status.type)


def _counted(succeeded: Any, failed: Any, now: Any) -> dict[Any, Any]:
    """A job's counts (SQL expressions) and what follows from them: its status, and when it
    finished once every item has."""
    done = succeeded + failed >= _jobs.c.total_items
    return {
        _jobs.c.succeeded_items: succeeded,
        _jobs.c.failed_items: failed,
        _jobs.c.status: case(
            (done & (failed == 0), _status(JobStatus.SUCCEEDED)),
            (done & (succeeded == 0), _status(JobStatus.FAILED)),
            (done, _status(JobStatus.PARTIAL)),
            (_jobs.c.status == JobStatus.PENDING, _status(JobStatus.RUNNING)),
            else_=_jobs.c.status,
        ),
        _jobs.c.finished_at: case(
            (done, func.coalesce(_jobs.c.finished_at, now)), else_=_jobs.c.finished_at
        ),
    }


# One item's end counted in its job (parameters: the job, 1 or 0 of each, the time).
_COUNT = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("job_id"))
    .values(
        _counted(
            _jobs.c.succeeded_items + bindparam("v_succeeded", type_=Integer),
            _jobs.c.failed_items + bindparam("v_failed", type_=Integer),
            bindparam("v_now", type_=_jobs.c.finished_at.type),
        )
    )
    .returning(_jobs.c.status)
)
# A job's first claims: started, and running if it was pending.
_START_JOB = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("job_id"))
    .values(
        started_at=func.coalesce(
            _jobs.c.started_at, bindparam("v_now", type_=_jobs.c.started_at.type)
        ),
        status=case(
            (_jobs.c.status == JobStatus.PENDING, _status(JobStatus.RUNNING)),
            else_=_jobs.c.status,
        ),
    )
)


def rollup(session: Session, job_id: int) -> Job:
    """Recount a job's items under a row lock, so concurrent workers never lose a count: for
    changes to many items at once (a re-run's copied items, an erasure); one item's end is
    counted by :func:`finish_item`."""
    # Locked before counting, so no item's end commits between the count and the update.
    session.execute(select(Job.id).where(Job.id == job_id).with_for_update())
    counts = dict(
        session.execute(
            select(JobItem.status, func.count())
            .where(JobItem.job_id == job_id)
            .group_by(JobItem.status)
        )
        .tuples()
        .all()
    )
    succeeded = literal(counts.get(ItemStatus.SUCCEEDED, 0))
    failed = literal(counts.get(ItemStatus.FAILED, 0))
    session.execute(
        update(_jobs).where(_jobs.c.id == job_id).values(_counted(succeeded, failed, utcnow()))
    )
    return session.get_one(Job, job_id, populate_existing=True)


def pending_item_ids(session: Session, job_id: int) -> list[int]:
    """The items of a job that have not finished, in order (what a fan-out sends)."""
    return list(
        session.scalars(
            select(JobItem.id)
            .where(JobItem.job_id == job_id, JobItem.status != ItemStatus.SUCCEEDED)
            .where(JobItem.status != ItemStatus.FAILED)
            .order_by(JobItem.position)
        )
    )
