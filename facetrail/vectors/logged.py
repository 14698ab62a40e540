"""Vector sets kept current from a change log: one ``VectorIndex`` per set and process.

Every write to a set bumps its generation and logs the labels it added or removed, in the same
transaction (:func:`log_changes`). Before a search, a process compares the generation it holds
with the set's (a read the search does anyway) and, if they differ, applies the logged changes
since (one indexed query, plus one for the added rows); it reloads the whole set only when it
has none cached or the log cannot bridge the gap. Used by the local backend's collections (face
ids, ``backends/local/vectors.py``) and by the faces identify jobs found (face result ids,
``services/past.py``); each says where its rows and its log live by a :class:`VectorLog`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
from sqlalchemy import insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Update

from facetrail.vectors import Matrix, VectorIndex

K = TypeVar("K", bound=Hashable)
M = TypeVar("M")

# Beyond this many logged changes a reload is cheaper than applying them one by one.
MAX_DELTA = 50_000


def log_changes(
    session: Session,
    bump: Update,
    table: type[Any],
    row: Callable[[int, Any, bool], dict[str, Any]],
    added: Sequence[Any],
    removed: Sequence[Any],
) -> int:
    """Bump a set's generation and log its changed labels, in the caller's transaction.

    ``bump`` increments the generation in SQL and returns it (``.returning(...)``): on
    PostgreSQL the row stays locked until commit, so generations commit in order and a reader
    that sees generation g sees every change up to g. ``row(generation, label, added)`` gives
    one row of the log ``table``; they go in one statement. Returns the new generation.
    """
    generation = int(session.execute(bump).scalar_one())
    rows = [
        *(row(generation, label, True) for label in added),
        *(row(generation, label, False) for label in removed),
    ]
    if rows:
        session.execute(insert(table), rows)
    return generation


@dataclass
class Rows(Generic[K, M]):
    """Rows of a set: labels, their vectors (n, dim) and what callers keep beside each."""

    labels: list[K]
    vectors: Matrix
    meta: list[M]


class VectorLog(ABC, Generic[K, M]):
    """Where one set's rows and change log live (one instance per lookup, naming the set)."""

    @abstractmethod
    def load(self, session: Session) -> Rows[K, M]:
        """Every row of the set."""

    @abstractmethod
    def changes(
        self, session: Session, after: int, upto: int, limit: int
    ) -> Sequence[tuple[int, K, bool]]:
        """(generation, label, added) logged after generation ``after`` up to ``upto``, in the
        order they were logged; at most ``limit``."""

    @abstractmethod
    def rows(self, session: Session, labels: Sequence[K]) -> Rows[K, M]:
        """The rows of ``labels`` that are (still) in the set."""


@dataclass
class VectorSet(Generic[K, M]):
    """One set's vectors as of ``generation``, and what callers keep beside each label."""

    generation: int
    index: VectorIndex[K]
    meta: dict[K, M] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class CacheStats:
    """How sets were brought up to date in this process (tests and benchmarks read these)."""

    reloads: int = 0
    deltas: int = 0


class LoggedVectors(Generic[K, M]):
    """A process's cached sets, by key ``(family, variant)``: a reload drops the family's other
    variants (another model version, a set deleted and made again under its name)."""

    def __init__(self, exact_limit: int | None = None) -> None:
        self._lock = threading.Lock()
        self._sets: dict[tuple[Hashable, Hashable], VectorSet[K, M]] = {}
        self.exact_limit = exact_limit
        self.stats = CacheStats()

    def _new_index(self, dim: int) -> VectorIndex[K]:
        if self.exact_limit is None:
            return VectorIndex(dim)
        return VectorIndex(dim, exact_limit=self.exact_limit)

    def forget(self, family: Hashable) -> None:
        """Drop a family's cached sets (after a deletion, so this process keeps none)."""
        with self._lock:
            for key in [k for k in self._sets if k[0] == family]:
                del self._sets[key]

    def get(
        self,
        session: Session,
        key: tuple[Hashable, Hashable],
        generation: int,
        log: VectorLog[K, M],
    ) -> VectorSet[K, M]:
        """The set as of ``generation`` (search it under its lock)."""
        with self._lock:
            cached = self._sets.get(key)
        if cached is not None:
            with cached.lock:
                if cached.generation == generation:
                    return cached
                if cached.generation < generation and self._apply_changes(
                    session, cached, generation, log
                ):
                    self.stats.deltas += 1
                    return cached
        fresh = self._load(session, generation, log)
        self.stats.reloads += 1
        with self._lock:
            for stale in [k for k in self._sets if k[0] == key[0]]:
                del self._sets[stale]
            self._sets[key] = fresh
        return fresh

    def _load(self, session: Session, generation: int, log: VectorLog[K, M]) -> VectorSet[K, M]:
        rows = log.load(session)
        dim = rows.vectors.shape[1] if rows.labels else 0
        vectors: VectorSet[K, M] = VectorSet(generation, self._new_index(dim))
        if rows.labels:
            vectors.index.add(rows.labels, rows.vectors)
            vectors.meta = dict(zip(rows.labels, rows.meta, strict=True))
        return vectors

    def _apply_changes(
        self, session: Session, cached: VectorSet[K, M], generation: int, log: VectorLog[K, M]
    ) -> bool:
        """Apply the logged changes up to ``generation``; False if it cannot."""
        changes = log.changes(session, cached.generation, generation, MAX_DELTA + 1)
        generations = {c[0] for c in changes}
        if len(changes) > MAX_DELTA or len(generations) != generation - cached.generation:
            return False
        final = {label: added for _, label, added in changes}  # the last word on each counts
        removed = [label for label, added in final.items() if not added]
        added = [label for label, added in final.items() if added]
        rows = log.rows(session, added) if added else None
        cached.index.remove(removed)
        for label in removed:
            cached.meta.pop(label, None)
        if rows is not None and rows.labels:
            if not cached.index.dim:
                cached.index = self._new_index(rows.vectors.shape[1])
            cached.index.add(rows.labels, rows.vectors)
            cached.meta.update(zip(rows.labels, rows.meta, strict=True))
        cached.generation = generation
        return True


def stack_blobs(blobs: Sequence[bytes]) -> Matrix:
    """float32 blobs of one length -> a (n, dim) matrix."""
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    matrix = np.frombuffer(b"".join(blobs), dtype=np.float32)
    return matrix.reshape(len(blobs), -1)
