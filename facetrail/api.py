"""The Python API: what the CLI uses, and what notebooks and other apps can call directly."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from facetrail.db import checkpoint, session_scope
from facetrail.errors import FacetrailError, InvalidParameterError
from facetrail.images import open_image, to_jpeg
from facetrail.images import upload as store_upload
from facetrail.images.scan import EnrollEntry, enroll_sources, expand_sources
from facetrail.jobs import job_type
from facetrail.jobs.base import TRUSTED_PATHS, UploadedImage
from facetrail.jobs.rerun import rerun_changes
from facetrail.jobs.submit import parse_payload
from facetrail.migrate import ensure_schema
from facetrail.models import Job
from facetrail.services import audit, corrections, past, people, unknowns
from facetrail.services.records import get_collection
from facetrail.services.reports import job_report, list_jobs
from facetrail.settings import Settings
from facetrail.vectors import Matrix
from facetrail.worker.dispatch import submit

# An image: a path, URL, s3:// key or upload:// reference, or the image's bytes.
ImageInput = str | Path | bytes
Progress = Callable[[int, int], None]  # (done, total)


class Facetrail:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        ensure_schema(self.settings)

    # Jobs ------------------------------------------------------------------------------------
    def enroll(
        self,
        collection: str,
        entries: Sequence[EnrollEntry | tuple[ImageInput, str]] | str | Path,
        *,
        upload: bool = False,
        wait: bool = True,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Enroll photos of people: a folder or ``s3://`` prefix (one sub-folder or ``Name_N.jpg``
        per person), or (image, person) pairs. ``upload`` copies local files into the image store
        first, so workers on other machines can read them."""
        if isinstance(entries, str | Path):
            entries = enroll_sources([entries], settings=self.settings)
        pairs = [(e.source, e.external_id) if isinstance(e, EnrollEntry) else e for e in entries]
        images = self._sources([image for image, _ in pairs], upload=upload, one_each=True)
        request = {
            "collection": collection,
            "entries": [{"image": i, "person": p} for i, (_, p) in zip(images, pairs, strict=True)],
        }
        return self._create("enroll", request, wait=wait, progress=progress)

    def identify(
        self,
        collection: str,
        images: Sequence[ImageInput],
        *,
        threshold: float | None = None,
        attributes: bool = False,
        upload: bool = False,
        wait: bool = True,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Name the known faces in ``images`` (folders, .txt lists, URLs, s3:// keys, bytes);
        ``attributes``: also each face's age range, gender, emotions... where measured."""
        request = {
            "collection": collection,
            "images": self._sources(images, upload=upload),
            "threshold": threshold,
            "attributes": attributes,
        }
        return self._create("identify", request, wait=wait, progress=progress)

    def tag(
        self,
        sources: Sequence[ImageInput],
        *,
        ops: Sequence[str] | None = None,
        column: str | None = None,
        upload: bool = False,
        wait: bool = True,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Labels, text, known people and moderation labels for a batch of images (all
        operations unless ``ops`` names some)."""
        request = {
            "images": self._sources(sources, column=column, upload=upload),
            "ops": None if ops is None else list(ops),
        }
        return self._create("tag", request, wait=wait, progress=progress)

    def _sources(
        self,
        images: Sequence[ImageInput],
        *,
        column: str | None = None,
        upload: bool = False,
        one_each: bool = False,
    ) -> list[str]:
        """Item sources in order: bytes go to the image store, the rest are expanded (folders,
        lists, s3 prefixes). ``one_each``: every input must stay exactly one source."""
        out: list[str] = []
        names: list[str | Path] = []

        def flush() -> None:
            found = expand_sources(names, settings=self.settings, column=column, upload=upload)
            if one_each and len(found) != len(names):
                raise InvalidParameterError("each enrollment entry must name one image")
            out.extend(found)
            names.clear()

        for image in images:
            if isinstance(image, bytes):
                flush()
                out.append(store_upload(self.settings, image))
            else:
                names.append(image)
        flush()
        return out

    def _create(
        self,
        kind: str,
        request: dict[str, Any],
        *,
        wait: bool,
        progress: Progress | None,
        report: bool = True,
    ) -> dict[str, Any]:
        """Validate ``request`` with its kind's schema (as ``facetrail.submit`` does), create the
        job, then run it; its report, or only ``{"job_id": ...}`` without ``report``."""
        parsed = parse_payload({"kind": kind, **request})
        with session_scope(self.settings) as session:
            jt = job_type(kind)
            job = jt.create(session, self.settings, parsed)
            if jt.sources_from_caller:
                # A local user names local files: read wherever they are (docs/security.md).
                job.parameters = {**job.parameters, TRUSTED_PATHS: True}
            job_id = job.id
        return self._run(job_id, wait=wait, progress=progress, report=report)

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
        # The changes are its report: the job's own (every item and face) would be thrown away.
        created = self._create(
            "rerun", {"job_id": job_id}, wait=wait, progress=progress, report=False
        )
        return self.rerun_changes(created["job_id"])

    def reindex(
        self,
        collection: str,
        *,
        backend: str | None = None,
        embedder: str | None = None,
        detector: str | None = None,
        wait: bool = True,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Re-embed every enrolled face into a new model or backend; switch when complete."""
        request = {
            "collection": collection,
            "backend": backend,
            "embedder": embedder,
            "detector": detector,
        }
        return self._create("reindex", request, wait=wait, progress=progress)

    def resume(
        self, job_id: int, *, wait: bool = True, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Send a job's unfinished items to the workers again (after an outage, say).

        Safe at any time: items that finished are skipped, and a running item that gets a
        second delivery ends with one result.
        """
        self.job(job_id)  # raises for an unknown job
        return self._run(job_id, wait=wait, progress=progress, resume=True)

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
        with session_scope(self.settings) as session:
            return people.rename(
                session,
                self.settings,
                collection,
                external_id,
                new_external_id=new_external_id,
                display_name=display_name,
            )

    def merge_people(self, collection: str, source: str, target: str) -> dict[str, Any]:
        with session_scope(self.settings) as session:
            return people.merge(session, self.settings, collection, source, target)

    def delete_person(self, collection: str, external_id: str) -> dict[str, Any]:
        """Erase a person: every copy of their biometric data and every mention of their name,
        but for one audit event (docs/security.md, "Erasure")."""
        with session_scope(self.settings) as session:
            result = people.delete(session, self.settings, collection, external_id)
        checkpoint(self.settings)
        return result

    # The past and corrections (docs/past.md) ------------------------------------------------
    def search_past(
        self,
        collection: str,
        image: ImageInput | None = None,
        *,
        person: str | None = None,
        cluster: str | int | None = None,
        threshold: float | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """Every face the collection's identify jobs found that matches the largest face of
        ``image``, or ``person``'s enrolled faces, or a cluster's faces (``unknown-42``; both as
        their template), with its job, image, box and similarity, best first. ``threshold`` is
        identify's 0-100 scale (FACETRAIL_MATCH_THRESHOLD, 80, by default)."""
        payload: dict[str, Any] = {"collection": collection, "threshold": threshold, "limit": limit}
        if image is not None:
            payload["image"] = UploadedImage(data=image) if isinstance(image, bytes) else str(image)
        if person is not None:
            payload["person"] = person
        if cluster is not None:
            payload["cluster"] = cluster
        request = past.parse_request(payload)
        # A local user's photo: read wherever it is, as their jobs' are.
        loaded = past.request_image(self.settings, request, local=True)
        with session_scope(self.settings) as session:
            return past.run_request(session, self.settings, request, loaded)

    def search_past_embeddings(
        self,
        collection: str,
        embeddings: Matrix,
        *,
        combine: past.Combine = "template",
        threshold: float | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """Search the past with any faces' embeddings (n, dim) from the collection's model: a
        cluster's faces, say. ``combine``: "template" searches with their normalised mean,
        "any" with each face (a result's best similarity counts)."""
        with session_scope(self.settings) as session:
            found = get_collection(session, collection)
            backend = past.recognizer(self.settings, found)
            return past.search(
                session,
                self.settings,
                found,
                backend,
                embeddings,
                threshold=threshold,
                limit=limit,
                combine=combine,
            )

    def correct_not(self, collection: str, face_result_id: int, person: str) -> dict[str, Any]:
        """Record that a face (a face result id, as job reports give) is not ``person``: they
        are never named there again, in any job or re-run, until the correction is withdrawn."""
        with session_scope(self.settings) as session:
            return corrections.correct_not(
                session, self.settings, collection, face_result_id, person
            )

    def correct_is(
        self,
        collection: str,
        face_result_id: int,
        person: str,
        *,
        enroll: bool = True,
        wait: bool = True,
    ) -> dict[str, Any]:
        """Record that a face is ``person`` and move its results to them. ``enroll`` also
        enrolls the face as them (a crop of its photo, through an enroll job), so that their
        template learns it; the photo must still be readable."""
        crop: bytes | None = None
        skipped: str | None = None
        if enroll:
            with session_scope(self.settings) as session:
                source, trusted, box, others = corrections.face_photo(
                    session, collection, face_result_id
                )
            try:
                photo = open_image(self.settings, source, local=trusted)
                crop = corrections.face_crop(photo, box, others)
            except FacetrailError as exc:
                skipped = f"the photo could not be read: {exc.message}"
        with session_scope(self.settings) as session:
            result = corrections.correct_is(
                session, self.settings, collection, face_result_id, person, crop=crop
            )
        if result["already"]:
            return result
        if result["enroll_job_id"] is not None:
            job = self._run(result["enroll_job_id"], wait=wait, progress=None)
            result["enrolled"] = job["status"] == "succeeded"
            if job["status"] == "failed":
                result["enroll_error"] = job["images"][0]["error"]
        elif enroll:
            result["enrolled"] = False
            result["enroll_error"] = skipped
        return result

    def withdraw_correction(self, collection: str, correction_id: int) -> dict[str, Any]:
        """Withdraw a correction: it no longer applies, and a face it enrolled leaves the
        person again."""
        with session_scope(self.settings) as session:
            return corrections.withdraw(session, self.settings, collection, correction_id)

    def list_corrections(self, collection: str, *, withdrawn: bool = False) -> list[dict[str, Any]]:
        with session_scope(self.settings) as session:
            return corrections.list_corrections(session, collection, withdrawn=withdrawn)

    # Unknown faces (docs/unknowns.md) -----------------------------------------------------
    def unknowns(self, collection: str, *, everything: bool = False) -> dict[str, Any]:
        """The collection's clusters of unknown faces, largest first, and what waits in the
        pool or was kept out (``everything``: merged, erased and empty clusters too)."""
        with session_scope(self.settings) as session:
            return unknowns.list_clusters(session, collection, everything=everything)

    def unknown(self, collection: str, cluster: str | int) -> dict[str, Any]:
        """One cluster (``unknown-42``) and its faces: job, image, box, when."""
        with session_scope(self.settings) as session:
            return unknowns.show(session, collection, cluster)

    def contact_sheet(
        self, collection: str, cluster: str | int, out: str | Path | None = None
    ) -> Path:
        """Draw a cluster's contact sheet into ``out`` (default:
        ``FACETRAIL_HOME/unknowns/<collection>/unknown-N.jpg``, which erasure deletes)."""
        shown = self.unknown(collection, cluster)
        path = (
            Path(out)
            if out
            else unknowns.sheet_path(self.settings, collection, unknowns.cluster_id(cluster))
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        unknowns.contact_sheet(self.settings, shown).save(path, quality=90)
        return path

    def store_contact_sheet(self, collection: str, cluster: str | int) -> str:
        """Draw a cluster's contact sheet into the image store (for apps on other machines):
        its ``upload://`` source. The cluster remembers it, so erasure deletes it."""
        shown = self.unknown(collection, cluster)
        source = store_upload(self.settings, to_jpeg(unknowns.contact_sheet(self.settings, shown)))
        with session_scope(self.settings) as session:
            unknowns.remember_sheet(session, self.settings, collection, cluster, source)
        return source

    def cluster_unknowns(self, collection: str) -> dict[str, Any]:
        """Cluster the unknown faces of every finished identify job not yet clustered (jobs
        whose clustering task was lost, or that ran before clustering existed)."""
        with session_scope(self.settings) as session:
            return unknowns.cluster_collection(session, self.settings, collection)

    def name_unknown(
        self,
        collection: str,
        cluster: str | int,
        person: str,
        *,
        wait: bool = True,
        timeout: float | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Enroll a cluster's faces as ``person``, then re-run the identify jobs whose photos
        hold them; returns each re-run's change report (``wait=False``: the enrollment job
        and the request ids its re-runs will have, without waiting)."""
        with session_scope(self.settings) as session:
            shown = unknowns.show(session, collection, cluster)
            faces, refused = unknowns.naming_faces(session, collection, cluster, person)
        crops, unreadable = unknowns.naming_crops(self.settings, faces)
        left_out = refused + unreadable
        with session_scope(self.settings) as session:
            job = unknowns.start_naming(
                session, self.settings, collection, cluster, person, crops, left_out
            )
            job_id, cid = job.id, job.parameters["unknown_cluster"]
            expected = [
                unknowns.rerun_request_id(cid, job_id, j) for j in unknowns.jobs_of(session, cid)
            ]
        out: dict[str, Any] = {
            "cluster": shown["cluster"],
            "person": person,
            "job_id": job_id,
            "left_out": left_out,
            "rerun_request_ids": expected,
        }
        enrolled = self._run(job_id, wait=wait, progress=progress)
        if not wait:
            return out
        deadline = None if timeout is None else time.monotonic() + timeout
        reruns = self._naming_reruns(job_id, deadline)
        changes = []
        for rerun in reruns:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            self.wait(rerun, timeout=left)
            changes.append(self.rerun_changes(rerun))
        newly = [
            c for report in changes for c in report["changes"]
            if c["change"] in ("named", "renamed") and c["after"] == person
        ]  # fmt: skip
        return {
            **out,
            "enrolled": enrolled["succeeded"],
            "failed": [
                {"image": i["image"], "error": i["error"]}
                for i in enrolled["images"]
                if i["status"] == "failed"
            ],
            "status": self.unknown(collection, cid)["status"],
            "reruns": changes,
            "newly_named": len(newly),
        }

    def _naming_reruns(self, job_id: int, deadline: float | None) -> list[int]:
        """The re-runs a naming enrollment set off, once it has (a worker's task makes them)."""
        while True:
            with session_scope(self.settings) as session:
                naming = unknowns.still_naming(session, job_id)
            with session_scope(self.settings) as session:
                # Read after the cluster: a re-run list written meanwhile is seen here.
                reruns = (session.get_one(Job, job_id).parameters or {}).get("reruns")
            if reruns is not None:
                return [int(r) for r in reruns]
            if not naming:
                return []  # nothing was enrolled: the cluster is open again
            if not self.settings.broker_url:
                # In-process, the follow-up ran already: it failed (the log says why).
                raise FacetrailError(
                    f"naming job {job_id} finished, but its re-runs could not be made; "
                    f"try again with `facetrail jobs {job_id} --resume`"
                )
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"the re-runs of naming job {job_id} did not start in time")
            time.sleep(0.5)

    def merge_unknowns(
        self, collection: str, source: str | int, target: str | int
    ) -> dict[str, Any]:
        """Fold cluster ``source`` into ``target`` (the target keeps its id)."""
        with session_scope(self.settings) as session:
            return unknowns.merge(session, self.settings, collection, source, target)

    def split_unknown(
        self, collection: str, cluster: str | int, faces: Sequence[int] | None = None
    ) -> dict[str, Any]:
        """Take ``faces`` (numbers from :meth:`unknown`) out of a cluster into a new one, or with
        none, split it where average linkage of its faces at the join similarity tells them
        apart."""
        with session_scope(self.settings) as session:
            return unknowns.split(session, self.settings, collection, cluster, faces)

    def erase_unknown(self, collection: str, cluster: str | int) -> dict[str, Any]:
        """Erase a cluster: its faces' embeddings, records and contact sheets (docs/security.md)."""
        with session_scope(self.settings) as session:
            result = unknowns.erase(session, self.settings, collection, cluster)
        checkpoint(self.settings)
        return result

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

    def _run(
        self,
        job_id: int,
        *,
        wait: bool,
        progress: Progress | None,
        resume: bool = False,
        report: bool = True,
    ) -> dict[str, Any]:
        # The job is committed above; only now do workers hear of it.
        total = self._total(job_id)
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        submit(self.settings, job_id, on_item=tick, resume=resume)
        if wait and self.settings.broker_url:
            self._await(job_id, progress=progress)
        return self.job(job_id) if report else {"job_id": job_id}

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
        """The job's report once it has finished (TimeoutError after ``timeout`` seconds)."""
        self._await(job_id, timeout=timeout, poll=poll, progress=progress)
        return self.job(job_id)

    def _await(
        self,
        job_id: int,
        *,
        timeout: float | None = None,
        poll: float = 0.5,
        progress: Progress | None = None,
    ) -> None:
        """Return when the job has finished; ``wait`` without building its report."""
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
            if status.finished:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {status.value} after {timeout}s")
            time.sleep(poll)

    def job(self, job_id: int) -> dict[str, Any]:
        with session_scope(self.settings) as session:
            return job_report(session, job_id)

    def jobs(self, limit: int = 20) -> list[dict[str, Any]]:
        with session_scope(self.settings) as session:
            return list_jobs(session, limit)
