"""Re-indexing a collection into a new model version or another backend.

The new index is built beside the old one, in a staging collection on the target backend.
Searches keep using the old index until every face is in the new one; then, in one transaction,
the collection switches over and the old face records go. A search never mixes model versions.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from facetrail.backends import backend_for, backend_options
from facetrail.errors import (
    CollectionNotFoundError,
    FacetrailError,
    InvalidParameterError,
    NoFaceError,
    NotFoundError,
)
from facetrail.images import LoadedImage, open_bytes
from facetrail.jobs.base import (
    TRUSTED_PATHS,
    Claim,
    CollectionName,
    JobType,
    Name,
    Request,
    add_job,
)
from facetrail.models import Collection, Face, Job, JobItem, JobKind, JobStatus, Person
from facetrail.services import audit, users
from facetrail.services.faces import record_indexed
from facetrail.services.records import bump_version, get_collection, get_or_create_image_id
from facetrail.settings import Settings

if TYPE_CHECKING:
    from facetrail.jobs.runner import Context


class ReindexRequest(Request):
    kind: Literal["reindex"] = "reindex"
    collection: CollectionName
    # The target backend (the collection's own when absent) and, for the local backend,
    # the embedder and the detector (the settings' ones when absent).
    backend: Name | None = None
    embedder: Name | None = None
    detector: Name | None = None


class ReindexJob(JobType):
    """Index every enrolled face again into a staging collection; switch over when complete."""

    name = "reindex"
    kind = JobKind.REINDEX
    schema = ReindexRequest
    sources_from_caller = False

    def create(self, session: Session, settings: Settings, request: ReindexRequest) -> Job:
        collection = get_collection(session, request.collection)
        target_backend = request.backend or collection.backend
        chosen = {"embedder": request.embedder, "detector": request.detector}
        target_settings = settings.with_(**{k: v for k, v in chosen.items() if v})
        options = backend_options(target_settings, target_backend)
        target = backend_for(settings, target_backend, options)
        if (
            target_backend == collection.backend
            and target.model_version == collection.model_version
        ):
            raise InvalidParameterError(
                f"collection {request.collection!r} is already indexed with "
                f"{target.model_version} on {target_backend}"
            )
        faces = session.execute(
            select(Face, Person.external_id)
            .join(Person, Face.person_id == Person.id)
            .where(
                Face.collection_id == collection.id,
                Face.backend == collection.backend,
                Face.model_version == collection.model_version,
            )
            .order_by(Face.id)
        ).all()
        job = Job(
            kind=self.kind,
            backend=target_backend,
            collection_id=collection.id,
            collection_version=collection.version,
            model_version=target.model_version,
        )
        items = [
            # A face whose photo record is gone is re-indexed from its stored crop.
            JobItem(
                position=i,
                source=face.image.source_uri if face.image else "",
                person_external_id=external_id,
            )
            for i, (face, external_id) in enumerate(faces)
        ]
        add_job(session, job, items)  # the staging name needs the job's id
        job.parameters = {
            "collection": request.collection,
            "target_backend": target_backend,
            "target_options": options,
            "staging_collection": f"{request.collection}.reindex-{job.id}",
            "source_faces": [face.id for face, _ in faces],
            "from_backend": collection.backend,
            "from_model": collection.model_version,
            # Its sources come from our own records, not from whoever asked for the re-index.
            TRUSTED_PATHS: True,
        }
        audit.record(
            session,
            settings,
            "reindex",
            collection,
            job_id=job.id,
            to_backend=target_backend,
            to_model=target.model_version,
            faces=len(faces),
        )
        return job

    def run(self, ctx: Context, claim: Claim) -> None:
        """Index one enrolled face into the staging collection, from its photo or stored crop;
        the item that completes the new index switches the collection over."""
        params = claim.parameters
        target = ctx.backend(params["target_backend"], params["target_options"])
        staging = params["staging_collection"]
        face_pk = params["source_faces"][claim.position]
        assert claim.person_external_id is not None
        target.ensure_collection(staging)
        image: LoadedImage | None = None
        result = None
        if claim.source:
            try:
                image = ctx.open_image(claim.source)
                result = target.index_faces(
                    staging, image, external_id=claim.person_external_id, max_faces=1
                )
            except FacetrailError as exc:
                if exc.retryable:
                    raise
                image = None
        from_photo = result is not None and bool(result.indexed)
        if not from_photo:
            # The photo is gone or unreadable: fall back to the aligned crop we stored.
            with ctx.session() as session:
                face = session.get(Face, face_pk)
                crop = face.crop_jpeg if face is not None else None
            if crop is None:
                raise NoFaceError(f"{claim.source}: neither the photo nor a stored crop is usable")
            image = open_bytes(ctx.settings, crop, source=claim.source or f"face {face_pk}")
            result = target.index_faces(
                staging, image, external_id=claim.person_external_id, max_faces=1
            )
            if not result.indexed:
                raise NoFaceError(f"{claim.source}: no face found in the photo or its stored crop")
        assert result is not None
        # The person is a user holding the face in the new index too, where the target
        # identifies by users.
        users.add_faces(
            target, staging, claim.person_external_id, [i.face_id for i in result.indexed]
        )
        with ctx.session() as session:
            collection = session.get_one(Collection, claim.collection_id)
            person = session.scalars(
                select(Person).where(
                    Person.collection_id == collection.id,
                    Person.external_id == claim.person_external_id,
                )
            ).one_or_none()
            if person is None:
                # Erased while this item ran: what it just indexed must not outlive them.
                target.delete_faces(staging, [i.face_id for i in result.indexed])
                users.drop_user(target, staging, claim.person_external_id)
                raise NotFoundError("the person was deleted meanwhile")
            image_id = None
            if from_photo and image is not None:
                image_id = get_or_create_image_id(session, image)
            rows = record_indexed(
                session,
                target,
                result,
                collection=collection,
                person=person,
                image_id=image_id,
                item_id=claim.item_id,
            )
            source = session.get(Face, face_pk)
            for row in rows:
                # The same photo: the gender model's answer on it carries over.
                if source is not None:
                    row.gender, row.gender_confidence = source.gender, source.gender_confidence
            old_index = None
            if ctx.succeed(session, claim, image_id) == JobStatus.SUCCEEDED:
                job = session.get_one(Job, claim.job_id, populate_existing=True)
                old_index = switch_over(session, job)
        if old_index is not None:
            drop_old_index(ctx.settings, old_index)


def switch_over(session: Session, job: Job) -> dict[str, Any] | None:
    """Point the collection at the finished new index. Returns the old index to delete."""
    if job.kind != JobKind.REINDEX or job.status != JobStatus.SUCCEEDED:
        return None
    params = job.parameters
    collection = session.execute(
        select(Collection).where(Collection.id == job.collection_id).with_for_update()
    ).scalar_one()
    if collection.backend_collection_id == params["staging_collection"]:
        return None  # an earlier delivery switched already
    if collection.version != job.collection_version:
        job.error = (
            "the collection changed while it was being re-indexed; the old index stays in use: "
            "run the re-index again"
        )
        return None
    old = {
        "backend": collection.backend,
        "backend_collection_id": collection.backend_collection_id,
        "options": dict(collection.backend_options),
    }
    session.execute(
        delete(Face).where(
            Face.collection_id == collection.id,
            Face.backend == params["from_backend"],
            Face.model_version == params["from_model"],
        )
    )
    collection.backend = params["target_backend"]
    collection.backend_options = params["target_options"]
    collection.backend_collection_id = params["staging_collection"]
    bump_version(session, collection, model_version=job.model_version)
    job.parameters = {**params, "switched": True}
    return old


def drop_old_index(settings: Settings, old: dict[str, Any]) -> None:
    # Best effort: the switch has happened; a leftover old index is unused, not wrong.
    with contextlib.suppress(CollectionNotFoundError):
        backend_for(settings, old["backend"], old["options"]).delete_collection(
            old["backend_collection_id"]
        )
