"""Enrollment: index one face per photo under the person it names, into a collection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from facetrail.backends import backend_options
from facetrail.errors import NoFaceError, NotFoundError
from facetrail.jobs.base import (
    Claim,
    CollectionName,
    ImageRef,
    JobType,
    Name,
    Request,
    add_job,
    store_images,
    with_names,
)
from facetrail.models import Collection, ItemStatus, Job, JobItem, JobKind
from facetrail.services import audit, users
from facetrail.services.faces import record_indexed
from facetrail.services.records import (
    bump_version,
    get_or_create_collection,
    get_or_create_image_id,
    get_or_create_person,
)
from facetrail.settings import Settings

if TYPE_CHECKING:
    from facetrail.jobs.runner import Context


class EnrollEntryRequest(BaseModel):
    """One photo of one person: ``{"image": ..., "person": "ann"}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: ImageRef
    person: Name


class EnrollRequest(Request):
    kind: Literal["enroll"] = "enroll"
    collection: CollectionName
    entries: list[EnrollEntryRequest]


class EnrollJob(JobType):
    """Index the largest face of each photo under its person; each success bumps the version."""

    name = "enroll"
    kind = JobKind.ENROLL
    schema = EnrollRequest

    def create(self, session: Session, settings: Settings, request: EnrollRequest) -> Job:
        backend = settings.backend
        collection = get_or_create_collection(
            session, request.collection, backend, backend_options(settings, backend)
        )
        images = [e.image for e in request.entries]
        sources = store_images(settings, images)
        job = Job(
            kind=self.kind,
            backend=backend,
            collection_id=collection.id,
            collection_version=collection.version,
            model_version=collection.model_version,
            parameters=with_names({"collection": request.collection}, images),
        )
        items = [
            JobItem(position=i, source=source, person_external_id=entry.person)
            for i, (source, entry) in enumerate(zip(sources, request.entries, strict=True))
        ]
        add_job(session, job, items)
        audit.record(
            session,
            settings,
            "enroll",
            collection,
            job_id=job.id,
            images=len(items),
            people=sorted({e.person for e in request.entries}),
        )
        return job

    def run(self, ctx: Context, claim: Claim) -> None:
        assert claim.person_external_id is not None and claim.backend_collection_id is not None
        backend = ctx.backend(claim.backend, claim.backend_options)
        image = ctx.open_image(claim.source)
        index, person_id = claim.backend_collection_id, claim.person_external_id
        info = backend.ensure_collection(index)
        with ctx.session() as session:
            # A public figure's known gender is the gender model's verdict over their faces.
            public = session.get_one(Collection, claim.collection_id).public_figures
        # An enrollment photo shows one person: index its largest face only.
        result = backend.index_faces(
            index, image, external_id=person_id, max_faces=1, attributes=public
        )
        if not result.indexed:
            raise NoFaceError(f"{image.source}: no face found to enroll")
        face_ids = [i.face_id for i in result.indexed]
        # The person is a user holding this face, where the backend identifies by users.
        users.add_faces(backend, index, person_id, face_ids)
        if backend.people_as_users:
            assert claim.collection_id is not None
            with ctx.session() as session:
                # Users are made before faces are recorded, so fewer users than recorded
                # people means a collection enrolled before people were users: catch up.
                recorded = users.people_with_faces(session, claim.collection_id, backend.name)
                earlier = (
                    users.enrolled_faces(session, claim.collection_id, backend.name)
                    if info.user_count < recorded
                    else {}
                )
            users.catch_up(backend, index, earlier)
        with ctx.session() as session:
            if session.get_one(JobItem, claim.item_id).status == ItemStatus.FAILED:
                # The person was erased while this item ran: undo the backend's copy.
                backend.delete_faces(index, face_ids)
                users.drop_user(backend, index, person_id)
                raise NotFoundError("the person was deleted meanwhile")
            collection = session.get_one(Collection, claim.collection_id)
            person = get_or_create_person(
                session,
                collection,
                claim.person_external_id,
                display_name=claim.person_external_id.replace("_", " "),
            )
            image_id = get_or_create_image_id(session, image)
            record_indexed(
                session,
                backend,
                result,
                collection=collection,
                person=person,
                image_id=image_id,
                item_id=claim.item_id,
            )
            bump_version(
                session, collection, model_version=backend.model_version, people=[person.id]
            )
            ctx.succeed(session, claim, image_id)
