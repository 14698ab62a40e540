"""The local backend's collections in memory: one ``VectorIndex`` per collection and process.

Every write to a collection bumps its generation and logs the faces it added or removed
(``local_face_changes``) in the same transaction. Before a search, a worker compares the
generation it holds with the collection's (a primary-key read the search does anyway) and, if
they differ, applies the logged changes since (one indexed query, plus one for the added rows);
it reloads the whole collection only when it has none cached or the log cannot bridge the gap.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from facetrail.backends.base import Embedding
from facetrail.models import LocalCollection, LocalFace, LocalFaceChange
from facetrail.settings import Settings
from facetrail.vectors import VectorIndex

# Beyond this many logged changes a reload is cheaper than applying them one by one.
MAX_DELTA = 50_000


def to_blob(vector: Embedding) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_blob(blob: bytes) -> Embedding:
    return np.frombuffer(blob, dtype=np.float32)


def log_changes(
    session: Session, collection_name: str, added: list[str], removed: list[str]
) -> int:
    """Bump a collection's generation and log its changed faces, in the caller's transaction.

    The increment happens in SQL: on PostgreSQL the row stays locked until commit, so
    generations commit in order and a reader that sees generation g sees every change up to g.
    """
    generation = session.execute(
        update(LocalCollection)
        .where(LocalCollection.name == collection_name)
        .values(generation=LocalCollection.generation + 1)
        .returning(LocalCollection.generation)
    ).scalar_one()
    session.add_all(
        [
            *(
                LocalFaceChange(
                    collection_name=collection_name, generation=generation, face_id=f, added=True
                )
                for f in added
            ),
            *(
                LocalFaceChange(
                    collection_name=collection_name, generation=generation, face_id=f, added=False
                )
                for f in removed
            ),
        ]
    )
    return int(generation)


@dataclass
class CollectionVectors:
    """One collection's faces as of ``generation``: face id -> vector, and whose face it is."""

    generation: int
    index: VectorIndex[str]
    external_ids: dict[str, str | None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class CacheStats:
    reloads: int = 0
    deltas: int = 0


class VectorCache:
    def __init__(self, settings: Settings | None = None) -> None:
        self._lock = threading.Lock()
        self._sets: dict[tuple[str, str, datetime], CollectionVectors] = {}
        self.exact_limit = None if settings is None else settings.vector_exact_limit
        self.stats = CacheStats()

    def _new_index(self, dim: int) -> VectorIndex[str]:
        if self.exact_limit is None:
            return VectorIndex(dim)
        return VectorIndex(dim, exact_limit=self.exact_limit)

    def forget(self, collection_name: str) -> None:
        """Drop a collection's cached vectors (after a deletion, so this process keeps none)."""
        with self._lock:
            for key in [k for k in self._sets if k[0] == collection_name]:
                del self._sets[key]

    def get(
        self, session: Session, collection: LocalCollection, model_version: str
    ) -> CollectionVectors:
        """The collection's vectors as of ``collection.generation`` (search under its lock)."""
        # A collection deleted and created again under its name is a different collection.
        key = (collection.name, model_version, collection.created_at)
        with self._lock:
            cached = self._sets.get(key)
        if cached is not None:
            with cached.lock:
                if cached.generation == collection.generation:
                    return cached
                if cached.generation < collection.generation and self._apply_changes(
                    session, cached, collection, model_version
                ):
                    self.stats.deltas += 1
                    return cached
        fresh = self._load(session, collection, model_version)
        self.stats.reloads += 1
        with self._lock:
            for stale in [k for k in self._sets if k[0] == collection.name]:
                del self._sets[stale]
            self._sets[key] = fresh
        return fresh

    def _load(
        self, session: Session, collection: LocalCollection, model_version: str
    ) -> CollectionVectors:
        rows = session.execute(
            select(LocalFace.face_id, LocalFace.external_id, LocalFace.embedding)
            .where(
                LocalFace.collection_name == collection.name,
                LocalFace.model_version == model_version,
            )
            .order_by(LocalFace.face_id)
        ).all()
        dim = len(rows[0].embedding) // 4 if rows else 0
        vectors = CollectionVectors(collection.generation, self._new_index(dim))
        if rows:
            matrix = np.frombuffer(b"".join(r.embedding for r in rows), dtype=np.float32)
            vectors.index.add([r.face_id for r in rows], matrix.reshape(len(rows), dim))
            vectors.external_ids = {r.face_id: r.external_id for r in rows}
        return vectors

    def _apply_changes(
        self,
        session: Session,
        cached: CollectionVectors,
        collection: LocalCollection,
        model_version: str,
    ) -> bool:
        """Apply the logged changes up to ``collection.generation``; False if it cannot."""
        changes = session.execute(
            select(LocalFaceChange.generation, LocalFaceChange.face_id, LocalFaceChange.added)
            .where(
                LocalFaceChange.collection_name == collection.name,
                LocalFaceChange.generation > cached.generation,
                LocalFaceChange.generation <= collection.generation,
            )
            .order_by(LocalFaceChange.id)
            .limit(MAX_DELTA + 1)
        ).all()
        generations = {c.generation for c in changes}
        if (
            len(changes) > MAX_DELTA
            or len(generations) != collection.generation - cached.generation
        ):
            return False
        final = {c.face_id: c.added for c in changes}  # the last word on each face counts
        removed = [f for f, added in final.items() if not added]
        added = [f for f, added in final.items() if added]
        rows = (
            session.execute(
                select(LocalFace.face_id, LocalFace.external_id, LocalFace.embedding).where(
                    LocalFace.face_id.in_(added),
                    LocalFace.collection_name == collection.name,
                    LocalFace.model_version == model_version,
                )
            ).all()
            if added
            else []
        )
        cached.index.remove(removed)
        for face_id in removed:
            cached.external_ids.pop(face_id, None)
        if rows:
            if not cached.index.dim:
                cached.index = self._new_index(len(rows[0].embedding) // 4)
            cached.index.add(
                [r.face_id for r in rows], np.stack([from_blob(r.embedding) for r in rows])
            )
            cached.external_ids.update({r.face_id: r.external_id for r in rows})
        cached.generation = collection.generation
        return True
