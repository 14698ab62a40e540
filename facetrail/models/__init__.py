"""Typed SQLAlchemy models. The Alembic migrations in ``migrations/`` are the schema of record."""

from facetrail.models.audit import AuditEvent
from facetrail.models.base import NAMING_CONVENTION, Base
from facetrail.models.collection import Collection, CollectionChange, Face, Person
from facetrail.models.image import Image
from facetrail.models.job import (
    FaceResult,
    ItemStatus,
    Job,
    JobItem,
    JobKind,
    JobStatus,
    TagResult,
)
from facetrail.models.local_index import LocalCollection, LocalFace, LocalFaceChange, LocalUser
from facetrail.models.past import Correction, CorrectionKind, PastFaceChange

__all__ = [
    "NAMING_CONVENTION",
    "AuditEvent",
    "Base",
    "Collection",
    "CollectionChange",
    "Correction",
    "CorrectionKind",
    "Face",
    "FaceResult",
    "Image",
    "ItemStatus",
    "Job",
    "JobItem",
    "JobKind",
    "JobStatus",
    "LocalCollection",
    "LocalFace",
    "LocalFaceChange",
    "LocalUser",
    "PastFaceChange",
    "Person",
    "TagResult",
]
