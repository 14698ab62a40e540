"""The local backend's collections in memory: one ``VectorIndex`` per collection and process.

Every write to a collection bumps its generation and logs the faces it added or removed
(``local_face_changes``) in the same transaction. Before a search, a worker compares the
generation it holds with the collection's (a primary-key read the search does anyway) and, if
they differ, applies the logged changes since (one indexed query, plus one for the added rows).
It loads the collection only when it has none cached or the log cannot bridge the gap: from the
newest snapshot (``facetrail.vectors.snapshots``) plus the changes logged since, or else from
the database, streamed in chunks into the index (no Python object per face survives the load).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from facetrail.backends.base import Embedding
from facetrail.models import LocalCollection, LocalFace, LocalFaceChange
from facetrail.settings import Settings
from facetrail.vectors import EXACT_LIMIT, VectorIndex
from facetrail.vectors.snapshots import LOG_KEEP, PRUNE_EVERY, Covered, Snapshots

# Beyond this many logged changes a reload is cheaper than applying them one by one.
MAX_DELTA = 50_000
# Faces read from the database at a time when loading a collection.
LOAD_CHUNK = 20_000


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
    Every ``PRUNE_EVERY`` generations the entries older than the newest ``LOG_KEEP`` go.
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
    if generation % PRUNE_EVERY == 0:
        prune_changes(session, collection_name, generation - LOG_KEEP)
    return int(generation)


def prune_changes(session: Session, collection_name: str, through: int) -> None:
    """Delete a collection's logged changes up to generation ``through``."""
    session.execute(
        delete(LocalFaceChange).where(
            LocalFaceChange.collection_name == collection_name,
            LocalFaceChange.generation <= through,
        )
    )


@dataclass
class CollectionVectors:
    """One collection's faces as of ``generation``: the index (face id -> vector, grouped by
    whose face it is) and each group's external id."""

    generation: int
    index: VectorIndex[str]
    # Group number -> external id (None where no face has it any more), and faces per group.
    names: list[str | None] = field(default_factory=list)
    counts: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    numbers: dict[str | None, int] = field(default_factory=dict)
    covered: Covered = field(default_factory=Covered)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, face_ids: list[str], external_ids: list[str | None], vectors: Any) -> None:
        groups = np.empty(len(face_ids), dtype=np.int32)
        for i, name in enumerate(external_ids):
            number = self.numbers.get(name)
            if number is None:
                number = self.numbers[name] = len(self.names)
                self.names.append(name)
            groups[i] = number
        self.remove(face_ids)
        self.index.add(face_ids, vectors, groups)
        if len(self.counts) < len(self.names):
            self.counts = np.concatenate(
                [self.counts, np.zeros(len(self.names) - len(self.counts), dtype=np.int64)]
            )
        np.add.at(self.counts, groups, 1)

    def remove(self, face_ids: list[str]) -> None:
        present = [f for f, on in zip(face_ids, self.index.present(face_ids), strict=True) if on]
        if not present:
            return
        groups = np.asarray(self.index.groups(present))
        self.index.remove(present)
        np.subtract.at(self.counts, groups, 1)
        # Nobody's faces left: the name goes too.
        for number in set(groups[self.counts[groups] == 0].tolist()):
            self.numbers.pop(self.names[number], None)
            self.names[number] = None

    def owners(self, labels: list[list[str]]) -> list[list[str | None]]:
        return [[self.names[g] for g in self.index.groups(row)] for row in labels]

    def extra(self) -> dict[str, Any]:
        return {"names": self.names}

    @classmethod
    def from_snapshot(
        cls, generation: int, index: VectorIndex[str], extra: Any
    ) -> CollectionVectors:
        vectors = cls(generation, index, list(extra["names"]))
        vectors.numbers = {n: i for i, n in enumerate(vectors.names) if n is not None}
        vectors.counts = np.zeros(len(vectors.names), dtype=np.int64)
        live = index.live_groups()
        np.add.at(vectors.counts, live, 1)
        vectors.covered = Covered(generation)
        return vectors


@dataclass
class CacheStats:
    reloads: int = 0  # loads of a whole collection, from a snapshot or the database
    snapshot_loads: int = 0
    deltas: int = 0


class VectorCache:
    def __init__(self, settings: Settings | None = None) -> None:
        self._lock = threading.Lock()
        self._sets: dict[tuple[str, str, datetime], CollectionVectors] = {}
        self.exact_limit = EXACT_LIMIT if settings is None else settings.vector_exact_limit
        self.snapshots = None if settings is None else Snapshots.for_settings(settings)
        self.stats = CacheStats()

    def _new_index(self, dim: int) -> VectorIndex[str]:
        return VectorIndex(dim, exact_limit=self.exact_limit)

    def forget(self, collection_name: str) -> None:
        """Drop a collection's cached vectors (after a deletion, so this process keeps none)."""
        with self._lock:
            for key in [k for k in self._sets if k[0] == collection_name]:
                del self._sets[key]

    @staticmethod
    def group(session: Session, collection_name: str, created_at: datetime) -> tuple[str, ...]:
        """What a collection's snapshots are of (``Snapshots`` groups)."""
        database = session.get_bind().engine.url.render_as_string(hide_password=True)
        return ("local_faces", database, collection_name, created_at.isoformat())

    def drop_snapshots(self, group: tuple[str, ...]) -> None:
        """Delete a collection's snapshots (after faces were deleted: they may hold them)."""
        if self.snapshots is not None:
            self.snapshots.drop(group)

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
                    self._update_snapshot(session, cached, collection, model_version)
                    return cached
        fresh = self._load(session, collection, model_version)
        self.stats.reloads += 1
        with self._lock:
            for stale in [k for k in self._sets if k[0] == collection.name]:
                del self._sets[stale]
            self._sets[key] = fresh
        return fresh

    def _variant(self, model_version: str) -> tuple[str, int]:
        return (model_version, self.exact_limit)

    def _update_snapshot(
        self,
        session: Session,
        vectors: CollectionVectors,
        collection: LocalCollection,
        model_version: str,
    ) -> None:
        if self.snapshots is None:
            return
        name, created_at, position = collection.name, collection.created_at, vectors.generation
        bind = session.get_bind()

        def still_valid() -> bool:
            # A fresh session: the caller's may not see commits made since it began.
            with Session(bind) as check:
                current = check.get(LocalCollection, name)
                if current is None or current.created_at != created_at:
                    return False
                removed = check.scalar(
                    select(LocalFaceChange.id)
                    .where(
                        LocalFaceChange.collection_name == name,
                        LocalFaceChange.generation > position,
                        LocalFaceChange.added.is_(False),
                    )
                    .limit(1)
                )
                return removed is None

        self.snapshots.update(
            self.group(session, name, created_at),
            self._variant(model_version),
            position,
            vectors.index,
            vectors.extra,
            vectors.covered,
            still_valid=still_valid,
        )

    def _load(
        self, session: Session, collection: LocalCollection, model_version: str
    ) -> CollectionVectors:
        if self.snapshots is not None:
            snapshot = self.snapshots.load(
                self.group(session, collection.name, collection.created_at),
                self._variant(model_version),
                collection.generation,
                exact_limit=self.exact_limit,
            )
            if snapshot is not None:
                vectors = CollectionVectors.from_snapshot(
                    snapshot.position, snapshot.index, snapshot.extra
                )
                if vectors.generation == collection.generation or self._apply_changes(
                    session, vectors, collection, model_version
                ):
                    self.stats.snapshot_loads += 1
                    self._update_snapshot(session, vectors, collection, model_version)
                    return vectors
        vectors = self._load_database(session, collection, model_version)
        self._update_snapshot(session, vectors, collection, model_version)
        return vectors

    def _load_database(
        self, session: Session, collection: LocalCollection, model_version: str
    ) -> CollectionVectors:
        where = (
            LocalFace.collection_name == collection.name,
            LocalFace.model_version == model_version,
        )
        vectors: CollectionVectors | None = None
        rows = session.execute(
            select(LocalFace.face_id, LocalFace.external_id, LocalFace.embedding)
            .where(*where)
            .order_by(LocalFace.face_id)
            .execution_options(yield_per=LOAD_CHUNK)
        )
        for chunk in rows.partitions(LOAD_CHUNK):
            dim = len(chunk[0].embedding) // 4
            if vectors is None:
                vectors = CollectionVectors(collection.generation, self._new_index(dim))
            matrix = np.frombuffer(b"".join(r.embedding for r in chunk), dtype=np.float32)
            vectors.add(
                [r.face_id for r in chunk],
                [r.external_id for r in chunk],
                matrix.reshape(len(chunk), dim),
            )
        return vectors or CollectionVectors(collection.generation, self._new_index(0))

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
        if any(cached.index.present(removed)):
            cached.covered.removed_at = collection.generation
        cached.remove(removed)
        if rows:
            if not cached.index.dim:
                cached.index = self._new_index(len(rows[0].embedding) // 4)
            cached.add(
                [r.face_id for r in rows],
                [r.external_id for r in rows],
                np.stack([from_blob(r.embedding) for r in rows]),
            )
        cached.generation = collection.generation
        return True
