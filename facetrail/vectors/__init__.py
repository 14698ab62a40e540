"""Vector search for every set of face vectors facetrail keeps: one index, exact or approximate.

Used by the local backend's collections (face search) and by person templates (naming). Rows
are unit vectors with a label each (a face id, a person id) and an optional integer group (whose
face it is). Below ``exact_limit`` live rows the index keeps float32 rows and answers with one
matrix product and a partial sort (``np.argpartition``), so only the top ``k`` ever become
Python objects. Above it the rows live only in an HNSW graph from usearch (see
docs/benchmarks.md for why usearch), stored as float16: its cosines are within 1e-4 of float32
ones, so the graph's own ranking is the exact ranking of what it visits, and a float32 copy
would double the memory. Adds and removals are incremental; removed rows are masked until a
quarter of the rows are dead, then the index compacts itself.

Per-row data are numpy arrays (labels as int64 or fixed-width bytes), never a Python object per
row: a million faces cost their graph plus ~80 bytes each. An index saves itself to a folder and
loads from one (``save``, ``load``; ``facetrail.vectors.snapshots`` keeps those folders), and a
saved graph never holds a removed row's vector (freed slots are overwritten first).

Exact products run BLAS on one thread: a worker process already has a core's worth of work,
and a second BLAS thread contending with other workers made a 10k-row search's p95 16 ms
instead of 0.6 ms on a busy 2-core machine.
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from usearch.index import Index

Matrix = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]
K = TypeVar("K", int, str)

# Below this many live rows a matrix product is as fast as a graph and needs no build.
EXACT_LIMIT = 50_000
# usearch graph parameters, chosen with ``bench.graph_params`` and ``bench.collections`` at a
# million synthetic faces (docs/benchmarks.md, "Collections of many faces"): connectivity 16
# with build depth 64 gave recall@1 0.85 against exact search at search depth 256; 32 and 256
# give 0.99 at 320 with a p95 under 5 ms per search through the backend. Building that graph
# takes about 15 minutes per million faces on 2 cores, once per collection: snapshots carry it
# to other workers.
CONNECTIVITY = 32
EXPANSION_ADD = 256
EXPANSION_SEARCH = 320
DTYPE = "f16"
# The layout ``save`` writes.
FORMAT = 1
# What a saved index was written with (saved indexes of other parameters are built again).
GRAPH = (DTYPE, CONNECTIVITY, EXPANSION_ADD, FORMAT)
# Rows added to the graph per call while building (bounds the float32 copy held meanwhile).
BUILD_CHUNK = 50_000
# Labels added since the lookup table was last sorted are kept in a dict up to this many, then
# merged into the table.
RECENT_LIMIT = 4096
# Graph keys above every row number, for the placeholders that overwrite freed slots.
_SCRUB_KEY = 1 << 62


def normalise(vectors: npt.ArrayLike) -> Matrix:
    """Rows scaled to unit length (zero rows stay zero)."""
    matrix = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: Matrix = (matrix / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return unit


def template(embeddings: npt.ArrayLike) -> Matrix:
    """A person's template: the normalised mean of their enrolled embeddings, shape (dim,)."""
    mean = np.asarray(embeddings, dtype=np.float32).reshape(-1, np.shape(embeddings)[-1])
    row: Matrix = normalise(mean.mean(axis=0))[0]
    return row


def top_k(scores: Matrix, k: int) -> Rows:
    """Column indices of each row's ``k`` highest scores, best first, ties by column (partial
    sort: only ``k`` per row are ever sorted)."""
    k = min(k, scores.shape[1])
    if k <= 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64)
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape).copy()
    picked = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -picked), axis=-1)
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


def trim_heap() -> None:
    """Give freed heap memory back to the system. After a set is streamed from the database,
    glibc keeps the freed row objects' memory (63 of 161 MiB grown loading 100,000 faces); other
    C libraries are left alone."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.malloc_trim(0)


_blas_limited = False


def _one_blas_thread() -> None:
    global _blas_limited
    if not _blas_limited:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")  # for the rest of the process
        _blas_limited = True


def _new_graph(dim: int) -> Index:
    from usearch.index import Index

    return Index(
        ndim=dim,
        metric="ip",
        dtype=DTYPE,
        connectivity=CONNECTIVITY,
        expansion_add=EXPANSION_ADD,
        expansion_search=EXPANSION_SEARCH,
    )


class VectorIndex(Generic[K]):
    """Labelled unit vectors searched by cosine similarity; not thread-safe (callers lock)."""

    def __init__(self, dim: int, *, exact_limit: int = EXACT_LIMIT, build_threads: int = 0) -> None:
        self.dim = dim
        self.exact_limit = exact_limit
        # usearch's threads for building (0: one per core); searches use one.
        self.build_threads = build_threads
        self._size = 0  # rows in use, live or dead
        self._live = 0
        self._text: bool | None = None  # str labels (as bytes) or int labels; unknown when empty
        self._labels: npt.NDArray[Any] = np.zeros(0, dtype=np.int64)  # row -> label
        self._groups: npt.NDArray[np.int32] = np.zeros(0, dtype=np.int32)
        self._dead: npt.NDArray[np.bool_] = np.zeros(0, dtype=bool)
        self._matrix: Matrix | None = np.zeros((0, dim), dtype=np.float32)  # exact mode only
        self._graph: Index | None = None
        # Label -> row: the live labels sorted at the last sort, and a dict of those added since.
        self._sorted: npt.NDArray[Any] = np.zeros(0, dtype=np.int64)
        self._sorted_rows: npt.NDArray[np.int32] = np.zeros(0, dtype=np.int32)
        self._recent: dict[K, int] = {}

    def __len__(self) -> int:
        return self._live

    def __contains__(self, label: object) -> bool:
        return isinstance(label, int | str) and self._row(cast(K, label)) is not None

    @property
    def approximate(self) -> bool:
        return self._graph is not None

    def vector(self, label: K) -> Matrix:
        row = self._row(label)
        if row is None:
            raise KeyError(label)
        vector: Matrix = self._vectors(np.array([row]))[0]
        return vector

    def present(self, labels: Sequence[K]) -> list[bool]:
        """Whether each label is in the index (one vectorised lookup)."""
        return cast(list[bool], (self._rows(labels) >= 0).tolist())

    def live_groups(self) -> npt.NDArray[np.int32]:
        """The group of every live row (in no particular order)."""
        return self._groups[: self._size][~self._dead[: self._size]]

    def groups(self, labels: Sequence[K]) -> list[int]:
        """The group each label was added with (0 when none was given)."""
        rows = self._rows(labels)
        if (rows < 0).any():
            raise KeyError(labels[int(np.argmin(rows))])
        return cast(list[int], self._groups[rows].tolist())

    # Labels ---------------------------------------------------------------------------------
    def _encode(self, labels: Sequence[K]) -> npt.NDArray[Any]:
        if self._text:
            return np.array([str(label).encode() for label in labels], dtype=bytes)
        return np.asarray(labels, dtype=np.int64)

    def _decode(self, values: npt.NDArray[Any]) -> list[K]:
        if self._text:
            return cast(list[K], [v.decode() for v in values.tolist()])
        return cast(list[K], values.tolist())

    def _row(self, label: K) -> int | None:
        row = self._rows([label])[0]
        return None if row < 0 else int(row)

    def _rows(self, labels: Sequence[K]) -> Rows:
        """Each label's live row, or -1."""
        rows = np.full(len(labels), -1, dtype=np.int64)
        if not len(labels) or self._text is None or isinstance(labels[0], str) != self._text:
            return rows
        if len(self._sorted):
            keys = self._encode(labels)
            at = np.minimum(np.searchsorted(self._sorted, keys), len(self._sorted) - 1)
            found = self._sorted_rows[at].astype(np.int64)
            rows = np.where((self._sorted[at] == keys) & ~self._dead[found], found, -1)
        if self._recent:
            for i, label in enumerate(labels):
                recent = self._recent.get(label)
                if recent is not None:
                    rows[i] = recent
        return rows

    def _merge(self, rows: Rows) -> None:
        """Merge rows into the sorted lookup table (dropping the dead rows it holds)."""
        keep = ~self._dead[self._sorted_rows]
        if not keep.all():
            self._sorted, self._sorted_rows = self._sorted[keep], self._sorted_rows[keep]
        labels = self._labels[rows]
        order = np.argsort(labels, kind="stable")
        labels, rows = labels[order], rows[order]
        at = np.searchsorted(self._sorted, labels)
        self._sorted = np.insert(self._sorted.astype(self._labels.dtype, copy=False), at, labels)
        self._sorted_rows = np.insert(self._sorted_rows, at, rows.astype(np.int32))

    def _flush_recent(self) -> None:
        if self._recent:
            rows = np.fromiter(self._recent.values(), dtype=np.int64, count=len(self._recent))
            self._recent = {}
            self._merge(rows)

    # Changes --------------------------------------------------------------------------------
    def add(
        self, labels: Sequence[K], vectors: npt.ArrayLike, groups: npt.ArrayLike | None = None
    ) -> None:
        """Add (or replace) rows; ``vectors`` need not be normalised. Labels must be distinct."""
        if not len(labels):
            return
        matrix = normalise(vectors)
        if matrix.shape != (len(labels), self.dim):
            raise ValueError(f"expected {len(labels)} vectors of {self.dim} dimensions")
        if self._text is None:
            self._text = isinstance(labels[0], str)
            self._labels = np.zeros(len(self._labels), dtype="S1" if self._text else np.int64)
            self._sorted = self._labels[:0]
        encoded = self._encode(labels)
        if len(np.unique(encoded)) != len(encoded):
            raise ValueError("labels must be distinct")
        self._remove_rows(self._rows(labels))
        if self._text and encoded.dtype.itemsize > self._labels.dtype.itemsize:
            self._labels = self._labels.astype(encoded.dtype)
        start, end = self._size, self._size + len(labels)
        self._reserve(end)
        self._labels[start:end] = encoded
        self._groups[start:end] = 0 if groups is None else np.asarray(groups, dtype=np.int32)
        self._dead[start:end] = False
        self._size, self._live = end, self._live + len(labels)
        if self._graph is not None:
            self._add_to_graph(np.arange(start, end), matrix)
        else:
            assert self._matrix is not None
            self._matrix[start:end] = matrix
        if len(labels) > RECENT_LIMIT:
            self._flush_recent()
            self._merge(np.arange(start, end))
        else:
            self._recent.update({label: start + i for i, label in enumerate(labels)})
            if len(self._recent) > RECENT_LIMIT:
                self._flush_recent()
        if self._graph is None and self._live >= self.exact_limit:
            self._build_graph()

    def remove(self, labels: Iterable[K]) -> None:
        listed = list(labels)
        self._remove_rows(self._rows(listed))
        for label in listed:
            self._recent.pop(label, None)

    def _remove_rows(self, rows: Rows) -> None:
        rows = rows[rows >= 0]
        if not len(rows):
            return
        for label in self._decode(self._labels[rows]):
            self._recent.pop(label, None)
        self._dead[rows] = True
        self._live -= len(rows)
        self._labels[rows] = b"" if self._text else -1  # no trace of the removed label
        if self._graph is not None:
            self._graph.remove(rows.astype(np.uint64))
        elif self._matrix is not None:
            self._matrix[rows] = 0
        if self._size - self._live > max(1024, self._size // 4):
            self._compact()

    def _reserve(self, rows: int) -> None:
        if rows <= len(self._dead):
            return
        # A quarter more each time: a million float32 rows doubled would hold 768 MB unused.
        capacity = max(rows, len(self._dead) * 5 // 4, 64)
        grow = capacity - len(self._dead)
        self._labels = np.concatenate([self._labels, np.zeros(grow, dtype=self._labels.dtype)])
        self._groups = np.concatenate([self._groups, np.zeros(grow, dtype=np.int32)])
        self._dead = np.concatenate([self._dead, np.ones(grow, dtype=bool)])
        if self._matrix is not None:
            grown = np.zeros((capacity, self.dim), dtype=np.float32)
            grown[: self._size] = self._matrix[: self._size]
            self._matrix = grown

    def _vectors(self, rows: Rows) -> Matrix:
        if self._graph is None:
            assert self._matrix is not None
            return self._matrix[rows]
        if not len(rows):
            return np.zeros((0, self.dim), dtype=np.float32)
        found = self._graph.get(rows.astype(np.uint64), dtype="f32")
        return np.stack(cast(tuple[Matrix, ...], found))

    def _add_to_graph(self, rows: Rows, matrix: Matrix) -> None:
        assert self._graph is not None
        for start in range(0, len(rows), BUILD_CHUNK):
            chunk = slice(start, start + BUILD_CHUNK)
            self._graph.add(
                rows[chunk].astype(np.uint64), matrix[chunk], threads=self.build_threads
            )

    def _build_graph(self) -> None:
        assert self._matrix is not None
        live = np.flatnonzero(~self._dead[: self._size])
        self._graph = _new_graph(self.dim)
        self._add_to_graph(live, self._matrix[live])
        self._matrix = None

    def _compact(self) -> None:
        live = np.flatnonzero(~self._dead[: self._size])
        labels, groups = self._labels[live], self._groups[live]
        old_graph, old_matrix = self._graph, self._matrix
        self._size = self._live = 0
        self._labels, self._groups = labels[:0].copy(), groups[:0].copy()
        self._dead = np.zeros(0, dtype=bool)
        graph = len(live) >= self.exact_limit
        self._graph = _new_graph(self.dim) if graph else None
        self._matrix = None if graph else np.zeros((0, self.dim), dtype=np.float32)
        self._reserve(len(live))
        self._labels[: len(live)] = labels
        self._groups[: len(live)] = groups
        self._dead[: len(live)] = False
        for start in range(0, len(live), BUILD_CHUNK):
            chunk = live[start : start + BUILD_CHUNK]
            if old_graph is not None:
                found = old_graph.get(chunk.astype(np.uint64), dtype="f32")
                vectors = np.stack(cast(tuple[Matrix, ...], found))
            else:
                assert old_matrix is not None
                vectors = old_matrix[chunk]
            rows = np.arange(start, start + len(chunk))
            if self._graph is not None:
                self._add_to_graph(rows, vectors)
            else:
                assert self._matrix is not None
                self._matrix[rows] = vectors
        self._size = self._live = len(live)
        self._sorted, self._sorted_rows = self._labels[:0], np.zeros(0, dtype=np.int32)
        self._recent = {}
        self._merge(np.arange(self._size))

    # Search ---------------------------------------------------------------------------------
    def search(self, queries: npt.ArrayLike, k: int) -> tuple[list[list[K]], Matrix]:
        """Each query's ``k`` most similar labels, best first, and their cosines (q, <=k).

        A row of cosines may end in -inf where the graph found fewer than ``k``; its labels
        list is then shorter.
        """
        matrix = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        k = min(k, self._live)
        if k <= 0 or len(matrix) == 0:
            return [[] for _ in range(len(matrix))], np.zeros((len(matrix), 0), dtype=np.float32)
        rows, cosines = (
            self._search_graph(matrix, k) if self._graph is not None else self._exact(matrix, k)
        )
        found = np.isfinite(cosines)
        labels = [
            self._decode(self._labels[row[keep]]) for row, keep in zip(rows, found, strict=True)
        ]
        return labels, cosines

    def _exact(self, queries: Matrix, k: int) -> tuple[Rows, Matrix]:
        assert self._matrix is not None
        _one_blas_thread()
        scores = queries @ self._matrix[: self._size].T
        if self._live < self._size:
            scores[:, self._dead[: self._size]] = -np.inf
        picked = top_k(scores, k)
        return picked, np.take_along_axis(scores, picked, axis=1)

    def _search_graph(self, queries: Matrix, k: int) -> tuple[Rows, Matrix]:
        assert self._graph is not None
        from usearch.index import BatchMatches

        found = self._graph.search(queries, k, threads=1)
        if isinstance(found, BatchMatches):
            keys = np.asarray(found.keys).astype(np.int64)
            distances = np.asarray(found.distances, dtype=np.float32)
            counts = np.asarray(found.counts)
        else:  # one query: its matches alone
            keys = np.asarray(found.keys).astype(np.int64)[None, :]
            distances = np.asarray(found.distances, dtype=np.float32)[None, :]
            counts = np.array([keys.shape[1]])
        width = keys.shape[1]
        # Missing matches (a sparse neighbourhood) point at row 0 and are masked.
        valid = np.arange(width)[None, :] < counts[:, None]
        keys = np.where(valid, keys, 0)
        cosines = np.where(valid & ~self._dead[keys], 1 - distances, -np.inf).astype(np.float32)
        # usearch orders by its distance; ties (one photo enrolled twice) by row, as exact does.
        order = np.lexsort((keys, -cosines), axis=-1)
        return np.take_along_axis(keys, order, axis=1), np.take_along_axis(cosines, order, axis=1)

    # Files ----------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write the index into ``folder`` (which must exist): no removed row's vector or label
        is written."""
        freed = 0 if self._graph is None else self._graph.stats.nodes - len(self._graph)
        if self._graph is not None and freed:
            # Slots freed by removals still hold the removed vectors, and usearch refills freed
            # slots before taking new ones: as many placeholders (zeros, removed again) as there
            # are freed slots overwrite them all.
            keys = np.arange(_SCRUB_KEY, _SCRUB_KEY + freed, dtype=np.uint64)
            self._graph.add(keys, np.zeros((freed, self.dim), dtype=np.float32), threads=1)
            self._graph.remove(keys)
        self._flush_recent()
        self._merge(np.zeros(0, dtype=np.int64))  # drops removed labels from the table
        meta = {
            "format": FORMAT,
            "dim": self.dim,
            "size": self._size,
            "live": self._live,
            "text": self._text,
            "graph": self._graph is not None,
        }
        np.save(folder / "labels.npy", self._labels[: self._size])
        np.save(folder / "groups.npy", self._groups[: self._size])
        np.save(folder / "dead.npy", self._dead[: self._size])
        np.save(folder / "sorted.npy", self._sorted)
        np.save(folder / "sorted_rows.npy", self._sorted_rows)
        if self._graph is not None:
            self._graph.save(str(folder / "graph.usearch"))
        else:
            assert self._matrix is not None
            np.save(folder / "vectors.npy", self._matrix[: self._size])
        (folder / "index.json").write_text(json.dumps(meta))

    @classmethod
    def load(
        cls, folder: Path, *, exact_limit: int = EXACT_LIMIT, build_threads: int = 0
    ) -> VectorIndex[K]:
        """An index as ``save`` wrote it into ``folder``, read into memory."""
        meta = json.loads((folder / "index.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{folder}: not an index this version wrote")
        index: VectorIndex[K] = cls(
            meta["dim"], exact_limit=exact_limit, build_threads=build_threads
        )
        index._size, index._live, index._text = meta["size"], meta["live"], meta["text"]
        index._labels = np.load(folder / "labels.npy")
        index._groups = np.load(folder / "groups.npy")
        index._dead = np.load(folder / "dead.npy")
        index._sorted = np.load(folder / "sorted.npy")
        index._sorted_rows = np.load(folder / "sorted_rows.npy")
        if meta["graph"]:
            graph = _new_graph(index.dim)
            graph.load(str(folder / "graph.usearch"))
            index._graph, index._matrix = graph, None
        else:
            index._matrix = np.load(folder / "vectors.npy")
        return index
