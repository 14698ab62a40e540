"""The local backend's collections in memory: one ``VectorIndex`` per collection and process.

Every write to a collection bumps its generation and logs the faces it added or removed
(``local_face_changes``) in the same transaction; each process applies the deltas since the
generation it holds at its next search (``facetrail.vectors.logged``, shared with past faces).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from facetrail.backends.base import Embedding
from facetrail.models import LocalCollection, LocalFace, LocalFaceChange
from facetrail.settings import Settings
from facetrail.vectors import logged
from facetrail.vectors.logged import LoggedVectors, Rows, VectorLog, VectorSet, stack_blobs

# A collection's vectors: face id -> vector, and whose face it is (external id).
CollectionVectors = VectorSet[str, str | None]


def to_blob(vector: Embedding) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_blob(blob: bytes) -> Embedding:
    return np.frombuffer(blob, dtype=np.float32)


def log_changes(
    session: Session, collection_name: str, added: list[str], removed: list[str]
) -> int:
    """Bump a collection's generation and log its changed faces, in the caller's transaction."""
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
    )


class _CollectionLog(VectorLog[str, str | None]):
    def __init__(self, collection_name: str, model_version: str) -> None:
        self.name = collection_name
        self.model_version = model_version

    def _select(self) -> Select[tuple[str, str | None, bytes]]:
        return select(LocalFace.face_id, LocalFace.external_id, LocalFace.embedding).where(
            LocalFace.collection_name == self.name, LocalFace.model_version == self.model_version
        )

    @staticmethod
    def _rows(
        session: Session, query: Select[tuple[str, str | None, bytes]]
    ) -> Rows[str, str | None]:
        rows = session.execute(query).tuples().all()
        return Rows(
            [face_id for face_id, _, _ in rows],
            stack_blobs([blob for _, _, blob in rows]),
            [external_id for _, external_id, _ in rows],
        )

    def load(self, session: Session) -> Rows[str, str | None]:
        return self._rows(session, self._select().order_by(LocalFace.face_id))

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
        return self._rows(session, self._select().where(LocalFace.face_id.in_(list(labels))))


class VectorCache:
    """This backend's collections, each as of its generation."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._sets: LoggedVectors[str, str | None] = LoggedVectors(
            None if settings is None else settings.vector_exact_limit
        )

    @property
    def stats(self) -> logged.CacheStats:
        return self._sets.stats

    def forget(self, collection_name: str) -> None:
        """Drop a collection's cached vectors (after a deletion, so this process keeps none)."""
        self._sets.forget(collection_name)

    def get(
        self, session: Session, collection: LocalCollection, model_version: str
    ) -> CollectionVectors:
        """The collection's vectors as of ``collection.generation`` (search under its lock)."""
        # A collection deleted and created again under its name is a different collection.
        key = (collection.name, (model_version, collection.created_at))
        log = _CollectionLog(collection.name, model_version)
        return self._sets.get(session, key, collection.generation, log)
