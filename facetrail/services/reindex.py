"""Re-indexing a collection into a new model version or another backend.

The new index is built beside the old one, in a staging collection on the target backend.
Searches keep using the old index until every face is in the new one; then, in one transaction,
the collection switches over and the old face records go. A search never mixes model versions.
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from facetrail.backends import backend_for, backend_options
from facetrail.errors import CollectionNotFoundError, InvalidParameterError
from facetrail.models import Collection, Face, Job, JobItem, JobKind, JobStatus, Person
from facetrail.services import audit
from facetrail.services.jobs import add_job
from facetrail.services.records import get_collection
from facetrail.settings import Settings


def create_reindex_job(
    session: Session,
    settings: Settings,
    collection_name: str,
    *,
    backend: str | None = None,
    embedder: str | None = None,
) -> Job:
    collection = get_collection(session, collection_name)
    target_backend = backend or collection.backend
    target_settings = settings.with_(embedder=embedder) if embedder else settings
    options = backend_options(target_settings, target_backend)
    target = backend_for(settings, target_backend, options)
    if target_backend == collection.backend and target.model_version == collection.model_version:
        raise InvalidParameterError(
            f"collection {collection_name!r} is already indexed with {target.model_version} "
            f"on {target_backend}"
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
        kind=JobKind.REINDEX,
        backend=target_backend,
        collection_id=collection.id,
        collection_version=collection.version,
        model_version=target.model_version,
    )
    items = [
        JobItem(
            position=i,
            source=face.image.source_uri if face.image else f"face:{face.id}",
            person_external_id=external_id,
        )
        for i, (face, external_id) in enumerate(faces)
    ]
    add_job(session, job, items)  # the staging name needs the job's id
    job.parameters = {
        "collection": collection_name,
        "target_backend": target_backend,
        "target_options": options,
        "staging_collection": f"{collection_name}.reindex-{job.id}",
        "source_faces": [face.id for face, _ in faces],
        "from_backend": collection.backend,
        "from_model": collection.model_version,
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
    collection.model_version = job.model_version
    collection.version += 1
    job.parameters = {**params, "switched": True}
    return old


def drop_old_index(settings: Settings, old: dict[str, Any]) -> None:
    # Best effort: the switch has happened; a leftover old index is unused, not wrong.
    with contextlib.suppress(CollectionNotFoundError):
        backend_for(settings, old["backend"], old["options"]).delete_collection(
            old["backend_collection_id"]
        )
