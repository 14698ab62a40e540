"""The Python API: what the CLI uses, and what notebooks and other apps can call directly."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from facetrail.backends import backend_options
from facetrail.db import session_scope
from facetrail.errors import FacetrailError
from facetrail.migrate import ensure_schema
from facetrail.models import Job, JobStatus
from facetrail.services import audit, people
from facetrail.services.jobs import (
    EnrollEntry,
    create_enroll_job,
    create_identify_job,
    create_tag_job,
)
from facetrail.services.records import get_collection
from facetrail.services.reindex import create_reindex_job
from facetrail.services.reports import job_report, list_jobs
from facetrail.services.rerun import create_rerun_job, rerun_changes
from facetrail.settings import Settings
from facetrail.sources import enroll_entries, expand_images, tag_sources
from facetrail.tagging.operations import OPERATIONS
from facetrail.worker.dispatch import submit

Progress = Callable[[int, int], None]  # (done, total)
FINISHED = {JobStatus.SUCCEEDED, JobStatus.PARTIAL, JobStatus.FAILED}


class Facetrail:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        ensure_schema(self.settings)

    # Jobs ------------------------------------------------------------------------------------
    def enroll(
        self,
        collection: str,
        entries: Sequence[EnrollEntry] | str | Path,
        *,
        wait: bool = True,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        if isinstance(entries, str | Path):
            entries = enroll_entries(Path(entries))
        with session_scope(self.settings) as session:
            backend = self.settings.backend
            job = create_enroll_job(
                session,
                collection=collection,
                backend=backend,
                entries=entries,
                options=backend_options(self.settings, backend),
            )
            job_id = job.id
            audit.record(
                session,
                self.settings,
                "enroll",
                get_collection(session, collection),
                job_id=job_id,
                images=len(entries),
                people=sorted({e.external_id for e in entries}),
            )
        return self._run(job_id, wait=wait, progress=progress)

    def identify(
        self,
        collection: str,
        images: Sequence[str | Path],
        *,
        threshold: float | None = None,
        wait: bool = True,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if threshold is not None:
            params["threshold"] = threshold
        with session_scope(self.settings) as session:
            job = create_identify_job(
                session, collection=collection, sources=expand_images(images), parameters=params
            )
            job_id = job.id
        return self._run(job_id, wait=wait, progress=progress)

    def tag(
        self,
        sources: Sequence[str | Path],
        *,
        ops: Sequence[str] = tuple(OPERATIONS),
        column: str | None = None,
        wait: bool = True,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Labels, text, known people and moderation labels for a batch of images."""
        s3 = None
        if any(str(s).lower().startswith("s3://") for s in sources):
            from facetrail.tagging.fetch import s3_client

            s3 = s3_client(self.settings)
        expanded = tag_sources(sources, column=column, s3=s3)
        with session_scope(self.settings) as session:
            job_id = create_tag_job(
                session, sources=expanded, ops=list(ops), backend=self.settings.backend
            ).id
        return self._run(job_id, wait=wait, progress=progress)

    def tag_results(self, job_id: int) -> list[dict[str, Any]]:
        """One entry per image, in order: its results per operation, or its error."""
        rows: list[dict[str, Any]] = []
        for image in self.job(job_id)["images"]:
            if image["status"] == "succeeded":
                rows.append(
                    {
                        "image": image["image"],
                        "status": "succeeded",
                        "error": None,
                        **image.get("results", {}),
                    }
                )
            else:
                message = image["error"] or f"not finished ({image['status']})"
                rows.append(
                    {
                        "image": image["image"],
                        "status": "failed",
                        "error": {
                            "code": image["error_code"] or image["status"],
                            "message": message,
                        },
                    }
                )
        return rows

    def tag_tables(self, job_id: int) -> tuple[Any, Any]:
        """The (long, wide) pandas DataFrames of a tag job."""
        from facetrail.tagging.tables import long_table, wide_table

        rows = self.tag_results(job_id)
        return long_table(rows), wide_table(rows)

    def rerun(
        self, job_id: int, *, wait: bool = True, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Identify a job's images again against the collection as it is now; report changes."""
        with session_scope(self.settings) as session:
            new_id = create_rerun_job(session, self.settings, job_id).id
        self._run(new_id, wait=wait, progress=progress)
        return self.rerun_changes(new_id)

    def reindex(
        self,
        collection: str,
        *,
        backend: str | None = None,
        embedder: str | None = None,
        wait: bool = True,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Re-embed every enrolled face into a new model or backend; switch when complete."""
        with session_scope(self.settings) as session:
            job_id = create_reindex_job(
                session, self.settings, collection, backend=backend, embedder=embedder
            ).id
        return self._run(job_id, wait=wait, progress=progress)

    def resume(
        self, job_id: int, *, wait: bool = True, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Send a job's unfinished items to the workers again (after an outage, say).

        Safe at any time: items that finished are skipped, and a running item that gets a
        second delivery ends with one result.
        """
        self.job(job_id)  # raises for an unknown job
        return self._run(job_id, wait=wait, progress=progress)

    def rerun_changes(self, job_id: int) -> dict[str, Any]:
        with session_scope(self.settings) as session:
            return rerun_changes(session, job_id)

    # People and history ------------------------------------------------------------------
    def rename_person(
        self,
        collection: str,
        external_id: str,
        *,
        new_external_id: str | None = None,
        display_name: str | None = None,
    ) -> dict[str, Any]:
        return people.rename(
            self.settings,
            collection,
            external_id,
            new_external_id=new_external_id,
            display_name=display_name,
        )

    def merge_people(self, collection: str, source: str, target: str) -> dict[str, Any]:
        return people.merge(self.settings, collection, source, target)

    def delete_person(self, collection: str, external_id: str) -> dict[str, Any]:
        return people.delete(self.settings, collection, external_id)

    def audit_log(self, collection: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        with session_scope(self.settings) as session:
            return [
                {
                    "at": e.at.isoformat(),
                    "actor": e.actor,
                    "action": e.action,
                    "collection": e.collection_name,
                    "job_id": e.job_id,
                    "details": e.details,
                }
                for e in audit.events(session, collection, limit)
            ]

    def _run(self, job_id: int, *, wait: bool, progress: Progress | None) -> dict[str, Any]:
        # The job is committed above; only now do workers hear of it.
        total = self._total(job_id)
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        submit(self.settings, job_id, on_item=tick)
        if wait and self.settings.broker_url:
            self.wait(job_id, progress=progress)
        return self.job(job_id)

    def _total(self, job_id: int) -> int:
        with session_scope(self.settings) as session:
            job = session.get(Job, job_id)
            return job.total_items if job else 0

    def wait(
        self,
        job_id: int,
        *,
        timeout: float | None = None,
        poll: float = 0.5,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with session_scope(self.settings) as session:
                job = session.get(Job, job_id)
                if job is None:
                    raise FacetrailError(f"job {job_id} does not exist")
                done, total, status = (
                    job.succeeded_items + job.failed_items,
                    job.total_items,
                    job.status,
                )
            if progress is not None:
                progress(done, total)
            if status in FINISHED:
                return self.job(job_id)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {status.value} after {timeout}s")
            time.sleep(poll)

    def job(self, job_id: int) -> dict[str, Any]:
        with session_scope(self.settings) as session:
            return job_report(session, job_id)

    def jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        with session_scope(self.settings) as session:
            return list_jobs(session, limit)
