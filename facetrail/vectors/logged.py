"""Vector sets kept current from a change log: one ``VectorIndex`` per set and process.

Every write to a set bumps its generation and logs the labels it added or removed, in the same
transaction (:func:`log_changes`, which also keeps the log to its newest generations). Before a
search, a process compares the generation it holds with the set's (a read the search does
anyway) and, if they differ, applies the logged changes since (one indexed query, plus one for
the added rows). It loads the whole set only when it has none cached or the log cannot bridge
the gap: from the newest snapshot at or below the set's generation plus the changes since
(``facetrail.vectors.snapshots``; for sets whose log names where their snapshots go), else from
the database, streamed in chunks. Used by the local backend's collections (face ids,
``backends/local/vectors.py``) and by the faces identify jobs found (face result ids,
``services/past.py``); each says where its rows and its log live by a :class:`VectorLog`.

Beside each label a set keeps a value (the local backend: whose face it is), stored as a group
number per row in the index and one list of the distinct values, so a million faces cost no
Python object each.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import Executable, Insert, Select, insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Update

from facetrail.models.base import table as mapped_table
from facetrail.vectors import EXACT_LIMIT, K, Matrix, VectorIndex, trim_heap
from facetrail.vectors.snapshots import LOG_KEEP, PRUNE_EVERY, Covered, Snapshots

M = TypeVar("M", bound=Hashable)
T = TypeVar("T", bound=tuple[Any, ...])

# Beyond this many logged changes a reload is cheaper than applying them one by one.
MAX_DELTA = 50_000
# Rows read from the database at a time when a set is loaded.
LOAD_CHUNK = 20_000
# Above any generation (generations are 32-bit integers in the database).
LAST_GENERATION = 2**31 - 1


_inserts: dict[Any, Insert] = {}


def _insert(table: type[Any]) -> Insert:
    """An INSERT of rows of ``table``'s mapped table, built once (Core: the ORM's bulk path
    costs more)."""
    statement = _inserts.get(table)
    if statement is None:
        statement = _inserts[table] = insert(mapped_table(table))
    return statement


def log_changes(
    session: Session,
    bump: Update,
    table: type[Any],
    row: Callable[[int, Any, bool], dict[str, Any]],
    added: Sequence[Any],
    removed: Sequence[Any],
    prune: Callable[[int], Executable] | None = None,
    bump_parameters: Mapping[str, Any] | None = None,
) -> int:
    """Bump a set's generation and log its changed labels, in the caller's transaction.

    ``bump`` increments the generation in SQL and returns it (``.returning(...)``): on
    PostgreSQL the row stays locked until commit, so generations commit in order and a reader
    that sees generation g sees every change up to g. ``row(generation, label, added)`` gives
    one row of the log ``table``; they go in one statement. Every ``PRUNE_EVERY`` generations
    ``prune(through)`` deletes the set's entries up to generation ``through``, keeping the newest
    ``LOG_KEEP`` (``facetrail.vectors.snapshots`` says why that is enough). ``bump_parameters``
    are the bound values of a ``bump`` built once. Returns the new generation.
    """
    generation = int(session.execute(bump, bump_parameters).scalar_one())
    rows = [
        *(row(generation, label, True) for label in added),
        *(row(generation, label, False) for label in removed),
    ]
    if rows:
        session.execute(_insert(table), rows)
    if prune is not None and generation % PRUNE_EVERY == 0:
        session.execute(prune(generation - LOG_KEEP))
    return generation


@dataclass
class Rows(Generic[K, M]):
    """Rows of a set: labels, their vectors (n, dim) and what callers keep beside each."""

    labels: list[K]
    vectors: Matrix
    meta: list[M]


def chunks(
    session: Session, query: Select[T], to_rows: Callable[[Sequence[T]], Rows[K, M]]
) -> Iterator[Rows[K, M]]:
    """A query's rows streamed ``LOAD_CHUNK`` at a time, each chunk made ``Rows``."""
    result = session.execute(query.execution_options(yield_per=LOAD_CHUNK))
    for part in result.tuples().partitions(LOAD_CHUNK):
        yield to_rows(part)


class VectorLog(ABC, Generic[K, M]):
    """Where one set's rows and change log live (one instance per lookup, naming the set)."""

    @abstractmethod
    def load(self, session: Session) -> Iterable[Rows[K, M]]:
        """Every row of the set, in chunks (see :func:`chunks`)."""

    @abstractmethod
    def changes(
        self, session: Session, after: int, upto: int, limit: int
    ) -> Sequence[tuple[int, K, bool]]:
        """(generation, label, added) logged after generation ``after`` up to ``upto``, in the
        order they were logged; at most ``limit``."""

    @abstractmethod
    def rows(self, session: Session, labels: Sequence[K]) -> Rows[K, M]:
        """The rows of ``labels`` that are (still) in the set."""

    def snapshot_group(self, session: Session) -> tuple[str, ...] | None:
        """What the set's snapshots are grouped under (``Snapshots``); None: never saved."""
        return None

    def snapshot_variant(self) -> tuple[object, ...]:
        """How the set's vectors were made (a model version): other variants are not loaded."""
        return ()

    def still_there(self, session: Session) -> bool:
        """Whether the set this log names still exists (not deleted, nor made again)."""
        return True


@dataclass
class VectorSet(Generic[K, M]):
    """One set's vectors as of ``generation``, and the value callers keep beside each label."""

    generation: int
    index: VectorIndex[K]
    # Group number -> value, the number of live rows of each group, and value -> group number.
    values: list[M | None] = field(default_factory=list)
    counts: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    numbers: dict[M, int] = field(default_factory=dict)
    covered: Covered = field(default_factory=Covered)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, rows: Rows[K, M]) -> None:
        if not rows.labels:
            return
        groups = np.empty(len(rows.labels), dtype=np.int32)
        for i, value in enumerate(rows.meta):
            number = self.numbers.get(value)
            if number is None:
                number = self.numbers[value] = len(self.values)
                self.values.append(value)
            groups[i] = number
        self.remove(rows.labels)
        self.index.add(rows.labels, rows.vectors, groups)
        if len(self.counts) < len(self.values):
            grow = np.zeros(len(self.values) - len(self.counts), dtype=np.int64)
            self.counts = np.concatenate([self.counts, grow])
        np.add.at(self.counts, groups, 1)

    def remove(self, labels: Sequence[K]) -> bool:
        """Remove the labels present; whether any was."""
        present = [k for k, on in zip(labels, self.index.present(labels), strict=True) if on]
        if not present:
            return False
        groups = np.asarray(self.index.groups(present))
        self.index.remove(present)
        np.subtract.at(self.counts, groups, 1)
        for number in set(groups[self.counts[groups] == 0].tolist()):  # nobody's rows left
            value = self.values[number]
            if value is not None:
                self.numbers.pop(value, None)
            self.values[number] = None
        return True

    def meta_of(self, labels: Sequence[Sequence[K]]) -> list[list[M | None]]:
        """The value beside each label of each row of search results."""
        return [[self.values[g] for g in self.index.groups(row)] for row in labels]

    def extra(self) -> dict[str, Any]:
        return {"values": self.values}

    @classmethod
    def from_snapshot(
        cls, generation: int, index: VectorIndex[K], extra: dict[str, Any]
    ) -> VectorSet[K, M]:
        loaded: VectorSet[K, M] = cls(generation, index, list(extra["values"]))
        loaded.counts = np.bincount(index.live_groups(), minlength=len(loaded.values))
        loaded.numbers = {
            v: i for i, v in enumerate(loaded.values) if v is not None and loaded.counts[i]
        }
        loaded.covered = Covered(generation)
        return loaded


@dataclass
class CacheStats:
    """How sets were brought up to date in this process (tests and benchmarks read these)."""

    reloads: int = 0  # whole loads, from a snapshot or the database
    snapshot_loads: int = 0
    deltas: int = 0


class LoggedVectors(Generic[K, M]):
    """A process's cached sets, by key ``(family, variant)``: a reload drops the family's other
    variants (another model version, a set deleted and made again under its name). With
    ``snapshots``, sets whose log names a snapshot group are saved and loaded there."""

    def __init__(self, exact_limit: int | None = None, snapshots: Snapshots | None = None) -> None:
        self._lock = threading.Lock()
        self._sets: dict[tuple[Hashable, Hashable], VectorSet[K, M]] = {}
        self.exact_limit = exact_limit
        self.snapshots = snapshots
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
                    self._update_snapshot(session, cached, log)
                    return cached
        fresh = self._load(session, generation, log)
        self.stats.reloads += 1
        with self._lock:
            for stale in [k for k in self._sets if k[0] == key[0]]:
                del self._sets[stale]
            self._sets[key] = fresh
        return fresh

    def _variant(self, log: VectorLog[K, M]) -> tuple[object, ...]:
        return (*log.snapshot_variant(), self.exact_limit)

    def _load(self, session: Session, generation: int, log: VectorLog[K, M]) -> VectorSet[K, M]:
        group = None if self.snapshots is None else log.snapshot_group(session)
        if self.snapshots is not None and group is not None:
            limit = EXACT_LIMIT if self.exact_limit is None else self.exact_limit
            snapshot = self.snapshots.load(group, self._variant(log), generation, exact_limit=limit)
            if snapshot is not None:
                loaded: VectorSet[K, M] = VectorSet.from_snapshot(
                    snapshot.position, snapshot.index, snapshot.extra
                )
                if loaded.generation == generation or self._apply_changes(
                    session, loaded, generation, log
                ):
                    self.stats.snapshot_loads += 1
                    self._update_snapshot(session, loaded, log)
                    return loaded
        vectors: VectorSet[K, M] = VectorSet(generation, self._new_index(0))
        for rows in log.load(session):
            if rows.labels and not vectors.index.dim:
                vectors.index = self._new_index(rows.vectors.shape[1])
            vectors.add(rows)
        trim_heap()
        self._update_snapshot(session, vectors, log)
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
        if cached.remove(removed):
            cached.covered.removed_at = generation
        if rows is not None and rows.labels:
            if not cached.index.dim:
                cached.index = self._new_index(rows.vectors.shape[1])
            cached.add(rows)
        cached.generation = generation
        return True

    def _update_snapshot(
        self, session: Session, vectors: VectorSet[K, M], log: VectorLog[K, M]
    ) -> None:
        group = None if self.snapshots is None else log.snapshot_group(session)
        if self.snapshots is None or group is None:
            return
        position, bind = vectors.generation, session.get_bind()

        def still_valid() -> bool:
            # A fresh session: the caller's may not see commits made since it began.
            with Session(bind) as check:
                if not log.still_there(check):
                    return False
                later = log.changes(check, position, LAST_GENERATION, MAX_DELTA + 1)
                return len(later) <= MAX_DELTA and all(added for _, _, added in later)

        self.snapshots.update(
            group,
            self._variant(log),
            position,
            vectors.index,
            vectors.extra,
            vectors.covered,
            still_valid=still_valid,
        )


def stack_blobs(blobs: Sequence[bytes]) -> Matrix:
    """float32 blobs of one length -> a (n, dim) matrix."""
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    matrix = np.frombuffer(b"".join(blobs), dtype=np.float32)
    return matrix.reshape(len(blobs), -1)
