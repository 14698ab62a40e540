"""What every job kind is made of: its request schema, how it creates a job, how it runs an item.

A job kind is one :class:`JobType` subclass in its own module, registered in
``facetrail.jobs.KINDS``. The same request model serves the Python API, the CLI and the
``facetrail.submit`` payloads of other apps, so a payload is validated exactly once, by the
kind that will run it.
"""

from __future__ import annotations

import base64
import binascii
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    PlainValidator,
    StringConstraints,
    Tag,
)
from sqlalchemy.orm import Session

from facetrail.errors import InvalidParameterError
from facetrail.images import upload
from facetrail.models import Collection, Job, JobItem, JobKind, JobStatus
from facetrail.models.base import utcnow
from facetrail.services.records import COLLECTION_NAME
from facetrail.settings import Settings

if TYPE_CHECKING:
    from facetrail.jobs.runner import Context


def _no_nul(text: str) -> str:
    # PostgreSQL refuses NUL in text; caught here it is a clear rejection, not a retried error.
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    return text


# A job parameter, true for jobs a local user created through the CLI or Python API: their
# local files are read wherever they are. Set by ``facetrail.api`` only (payloads cannot name it:
# every request schema forbids extra fields); a re-run keeps its original's, a re-index sets it
# (its sources come from our own records). Without it, local files only under the image roots.
TRUSTED_PATHS = "trusted_paths"


# An image source: a path, file:// or http(s):// URL, s3:// key or upload:// reference.
Source = Annotated[str, StringConstraints(min_length=1, max_length=4096), AfterValidator(_no_nul)]
# A person, actor or operation name.
Name = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_no_nul)]


def _collection_name(name: str) -> str:
    if not COLLECTION_NAME.fullmatch(name):
        raise ValueError("must be 1-255 characters of letters, digits, _ . -")
    return name


CollectionName = Annotated[str, AfterValidator(_collection_name)]
RequestId = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_no_nul)]


def _base64(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value  # the Python API hands bytes as they are
    if not isinstance(value, str):
        raise ValueError("must be a base64 string")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not valid base64") from None
    if not data:
        raise ValueError("must not be empty")
    return data


class UploadedImage(BaseModel):
    """An image sent as bytes: ``{"data": "<base64>", "name": "optional.jpg"}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: Annotated[bytes, PlainValidator(_base64)]
    name: Name | None = None


def _image_kind(value: Any) -> str:
    return "upload" if isinstance(value, dict | UploadedImage) else "source"


# A source string or uploaded bytes; errors name the branch ("images.0.upload.data: ...").
ImageRef = Annotated[
    Annotated[Source, Tag("source")] | Annotated[UploadedImage, Tag("upload")],
    Discriminator(_image_kind),
]


class Request(BaseModel):
    """Fields every kind accepts. Subclasses add theirs and fix ``kind``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    kind: str
    # Makes a submission idempotent: the same request id never creates a second job.
    request_id: RequestId | None = None
    # On whose behalf an app submits; the audit log records it.
    actor: Name | None = None


def store_images(settings: Settings, images: Sequence[ImageRef]) -> list[str]:
    """Item sources for ``images``: uploaded bytes go to the image store, sources stay as given.

    Refuses more than ``settings.max_job_images`` images, before storing any.
    """
    if len(images) > settings.max_job_images:
        raise InvalidParameterError(
            f"{len(images)} images in one job; at most {settings.max_job_images} "
            "(FACETRAIL_MAX_JOB_IMAGES): split them into several jobs"
        )
    limit = settings.max_image_bytes
    out: list[str] = []
    for image in images:
        if isinstance(image, UploadedImage):
            if len(image.data) > limit:
                raise InvalidParameterError(
                    f"an uploaded image of {len(image.data)} bytes exceeds the {limit}-byte limit"
                )
            out.append(upload(settings, image.data))
        else:
            out.append(image)
    return out


def image_names(images: Sequence[ImageRef]) -> dict[str, str]:
    """Names given to uploaded images, by item position (kept in the job's parameters)."""
    return {
        str(i): image.name
        for i, image in enumerate(images)
        if isinstance(image, UploadedImage) and image.name
    }


@dataclass(frozen=True)
class Claim:
    """One item, taken by a worker: everything its run needs, read when it was claimed."""

    item_id: int
    job_id: int
    # The registry name of the job type that runs it.
    kind: str
    position: int
    source: str
    person_external_id: str | None
    # The backend and pinned options of the job's collection (the job's own for tag jobs).
    backend: str
    backend_options: dict[str, Any]
    collection_id: int | None
    backend_collection_id: str | None
    # The embedding space the collection's faces are in ("" before its first enrollment).
    collection_model_version: str | None
    parameters: dict[str, Any]
    rerun_of_id: int | None
    # Seconds earlier attempts spent on fetches that failed (the item's fetch budget).
    fetch_seconds: float = 0.0
    # This claim's attempt (1: the first, so no earlier attempt left results to replace).
    attempts: int = 1


class JobType(ABC):
    """One kind of job.

    Subclasses set:

    - ``name``: the kind as payloads and the registry name it (``"enroll"``, ``"rerun"``...);
    - ``kind``: the :class:`JobKind` of the jobs it creates (a re-run creates identify jobs);
    - ``schema``: the pydantic model of its requests and ``facetrail.submit`` payloads;
    - ``uses_collection``: whether its items run against the job's collection;
    - ``sources_from_caller``: whether requests name the images (not a re-run or re-index).

    and implement :meth:`create` and :meth:`run`.
    """

    name: ClassVar[str]
    kind: ClassVar[JobKind]
    schema: ClassVar[type[Request]]
    uses_collection: ClassVar[bool] = True
    # Whether the caller names the item sources (False: they come from our own records, and
    # the job keeps the trust they were admitted with).
    sources_from_caller: ClassVar[bool] = True

    def parse(self, payload: Any) -> Request:
        """Validate a payload into this kind's request (raises pydantic's ValidationError)."""
        return self.schema.model_validate(payload)

    @abstractmethod
    def create(self, session: Session, settings: Settings, request: Any) -> Job:
        """Add the job and its items in the caller's transaction; returns it with its id.

        ``request`` is an instance of ``schema``. Nothing is sent to workers here: the caller
        commits, then fans the job out.
        """

    @abstractmethod
    def run(self, ctx: Context, claim: Claim) -> None:
        """Run one claimed item: compute, then write its results and ``ctx.succeed`` it in one
        transaction. Raise a FacetrailError to fail it (``retryable`` to try again later)."""


def collection_job(
    kind: JobKind, collection: Collection, parameters: dict[str, Any], **fields: Any
) -> Job:
    """A job against ``collection`` as it is now: its backend, version and model version."""
    return Job(
        kind=kind,
        backend=collection.backend,
        collection_id=collection.id,
        collection_version=collection.version,
        model_version=collection.model_version,
        parameters=parameters,
        **fields,
    )


def add_job(session: Session, job: Job, items: list[JobItem]) -> Job:
    """Attach ``items`` (``total_items`` follows them), add the job and give it an id."""
    job.items = items
    job.total_items = len(items)
    session.add(job)
    if job.total_items == 0:
        job.status = JobStatus.SUCCEEDED
        job.started_at = job.finished_at = utcnow()
    session.flush()
    return job


def source_items(sources: Sequence[str]) -> list[JobItem]:
    return [JobItem(position=i, source=s) for i, s in enumerate(sources)]


def with_names(parameters: dict[str, Any], images: Sequence[ImageRef]) -> dict[str, Any]:
    names = image_names(images)
    return {**parameters, "image_names": names} if names else parameters
