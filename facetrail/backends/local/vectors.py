"""The local backend's collections in memory: one ``VectorIndex`` per collection and process.

Every write to a collection bumps its generation and logs the faces it added or removed
(``local_face_changes``) in the same transaction; each process applies the deltas since the
generation it holds at its next search (``facetrail.vectors.logged``, shared with past faces).
A collection large enough for a graph is saved as a snapshot (``facetrail.vectors.snapshots``)
that new workers load, applying only the changes logged since.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

import numpy as np
from sqlalchemy import Delete, Select, delete, select, update
from sqlalchemy.orm import Session

from facetrail.backends.base import Embedding
from facetrail.db import database_of
from facetrail.models import LocalCollection, LocalFace, LocalFaceChange
from facetrail.settings import Settings
from facetrail.vectors import logged
from facetrail.vectors.logged import LoggedVectors, Rows, VectorLog, VectorSet, chunks, stack_blobs
from facetrail.vectors.snapshots import Snapshots

# A collection's vectors: face id -> vector, and whose face it is (external id).
CollectionVectors = VectorSet[str, str | None]
FaceRow = tuple[str, str | None, bytes]


def to_blob(vector: Embedding) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_blob(blob: bytes) -> Embedding:
    return np.frombuffer(blob, dtype=np.float32)


def log_changes(
    session: Session, collection_name: str, added: list[str], removed: list[str]
) -> int:
    """Bump a collection's generation and log its changed faces, in the caller's transaction."""

    def prune(through: int) -> Delete:
        return delete(LocalFaceChange).where(
            LocalFaceChange.collection_name == collection_name,
            LocalFaceChange.generation <= through,
        )

    return logged.log_changes(
        session,
        update(LocalCollection)
        .where(LocalCollection.name == collection_name)
        .values(generation=LocalCollection.generation + 1)
        .returning(LocalCollection.generation),
        LocalFaceChange,
        lambda generation, face_id, added: {
            "collection_name": collection_name,
            "generation": generation,
            "face_id": face_id,
            "added": added,
        },
        added,
        removed,
        prune,
    )


def snapshot_group(session: Session, collection_name: str, created_at: datetime) -> tuple[str, ...]:
    """What a collection's snapshots are grouped under (``Snapshots``)."""
    return ("local_faces", database_of(session), collection_name, created_at.isoformat())


class _CollectionLog(VectorLog[str, str | None]):
    def __init__(self, collection_name: str, created_at: datetime, model_version: str) -> None:
        self.name = collection_name
        self.created_at = created_at
        self.model_version = model_version

    def _select(self) -> Select[FaceRow]:
        return select(LocalFace.face_id, LocalFace.external_id, LocalFace.embedding).where(
            LocalFace.collection_name == self.name, LocalFace.model_version == self.model_version
        )

    @staticmethod
    def _rows(rows: Sequence[FaceRow]) -> Rows[str, str | None]:
        return Rows(
            [face_id for face_id, _, _ in rows],
            stack_blobs([blob for _, _, blob in rows]),
            [external_id for _, external_id, _ in rows],
        )

    def load(self, session: Session) -> Iterator[Rows[str, str | None]]:
        return chunks(session, self._select().order_by(LocalFace.face_id), self._rows)

    def changes(
        self, session: Session, after: int, upto: int, limit: int
    ) -> Sequence[tuple[int, str, bool]]:
        return (
            session.execute(
                select(LocalFaceChange.generation, LocalFaceChange.face_id, LocalFaceChange.added)
                .where(
                    LocalFaceChange.collection_name == self.name,
                    LocalFaceChange.generation > after,
                    LocalFaceChange.generation <= upto,
                )
                .order_by(LocalFaceChange.id)
                .limit(limit)
            )
            .tuples()
            .all()
        )

    def rows(self, session: Session, labels: Sequence[str]) -> Rows[str, str | None]:
        query = self._select().where(LocalFace.face_id.in_(list(labels)))
        return self._rows(session.execute(query).tuples().all())

    def snapshot_group(self, session: Session) -> tuple[str, ...]:
        return snapshot_group(session, self.name, self.created_at)

    def snapshot_variant(self) -> tuple[object, ...]:
        return (self.model_version,)

    def still_there(self, session: Session) -> bool:
        current = session.get(LocalCollection, self.name)
        return current is not None and current.created_at == self.created_at


class VectorCache:
    """This backend's collections, each as of its generation."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._sets: LoggedVectors[str, str | None] = LoggedVectors(
            None if settings is None else settings.vector_exact_limit,
            None if settings is None else Snapshots.for_settings(settings),
        )

    @property
    def stats(self) -> logged.CacheStats:
        return self._sets.stats

    def forget(self, collection_name: str) -> None:
        """Drop a collection's cached vectors (after a deletion, so this process keeps none)."""
        self._sets.forget(collection_name)

    def drop_snapshots(self, group: tuple[str, ...]) -> None:
        """Delete a collection's snapshots (after faces were deleted: they may hold them)."""
        if self._sets.snapshots is not None:
            self._sets.snapshots.drop(group)

    def get(
        self, session: Session, collection: LocalCollection, model_version: str
    ) -> CollectionVectors:
        """The collection's vectors as of ``collection.generation`` (search under its lock)."""
        # A collection deleted and created again under its name is a different collection.
        key = (collection.name, (model_version, collection.created_at))
        log = _CollectionLog(collection.name, collection.created_at, model_version)
        return self._sets.get(session, key, collection.generation, log)
