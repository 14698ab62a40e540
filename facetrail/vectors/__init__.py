"""Vector search for every set of face vectors facetrail keeps: one index, exact or approximate.

Used by the local backend's collections (face search) and by person templates (naming). Rows
are unit vectors with a label each (a face id, a person id). Below ``exact_limit`` live rows the
index answers with one matrix product and a partial sort (``np.argpartition``), so only the top
``k`` ever become Python objects. Above it an HNSW graph from usearch (see docs/benchmarks.md
for why usearch) proposes candidates, stored as 8-bit codes beside the float32 rows, and the
candidates are re-ranked exactly against those rows. Adds and removals are incremental; removed
rows are masked until a quarter of the rows are dead, then the index compacts itself.

Exact products run BLAS on one thread: a worker process already has a core's worth of work,
and a second BLAS thread contending with other workers made a 10k-row search's p95 16 ms
instead of 0.6 ms on a busy 2-core machine.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from usearch.index import Index

Matrix = npt.NDArray[np.float32]
K = TypeVar("K", bound=Hashable)

# Below this many live rows a matrix product is as fast as a graph and needs no build.
EXACT_LIMIT = 50_000
# Graph candidates re-ranked exactly for each query (at least k).
CANDIDATES = 64
# usearch graph parameters, measured on clustered synthetic faces (docs/benchmarks.md): at
# 100,000 faces connectivity 16 reached recall@1 0.987 whatever the search depth (512) or the
# candidates (128) or the codes (f16); 32 reached 0.990 for twice the build time.
CONNECTIVITY = 32
EXPANSION_ADD = 128
EXPANSION_SEARCH = 256
# The graph keeps 8-bit codes; exact re-ranking uses the float32 rows.
DTYPE = "i8"


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


def top_k(scores: Matrix, k: int) -> npt.NDArray[np.int64]:
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


_blas_limited = False


def _one_blas_thread() -> None:
    global _blas_limited
    if not _blas_limited:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")  # for the rest of the process
        _blas_limited = True


class VectorIndex(Generic[K]):
    """Labelled unit vectors searched by cosine similarity; not thread-safe (callers lock)."""

    def __init__(
        self, dim: int, *, exact_limit: int = EXACT_LIMIT, candidates: int = CANDIDATES
    ) -> None:
        self.dim = dim
        self.exact_limit = exact_limit
        self.candidates = candidates
        self._matrix: Matrix = np.zeros((0, dim), dtype=np.float32)
        self._size = 0  # rows in use, live or dead
        self._labels: list[K | None] = []
        self._rows: dict[K, int] = {}
        self._dead: npt.NDArray[np.bool_] = np.zeros(0, dtype=bool)
        self._graph: Index | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, label: object) -> bool:
        return label in self._rows

    @property
    def approximate(self) -> bool:
        return self._graph is not None

    def vector(self, label: K) -> Matrix:
        row: Matrix = self._matrix[self._rows[label]]
        return row

    # Changes ------------------------------------------------------------------------------
    def add(self, labels: Sequence[K], vectors: npt.ArrayLike) -> None:
        """Add (or replace) rows; ``vectors`` need not be normalised."""
        if not labels:
            return
        matrix = normalise(vectors)
        if matrix.shape != (len(labels), self.dim):
            raise ValueError(f"expected {len(labels)} vectors of {self.dim} dimensions")
        self.remove([label for label in labels if label in self._rows])
        start, end = self._size, self._size + len(labels)
        self._reserve(end)
        self._matrix[start:end] = matrix
        self._dead[start:end] = False
        self._labels.extend(labels)
        for offset, label in enumerate(labels):
            self._rows[label] = start + offset
        self._size = end
        if self._graph is not None:
            self._graph.add(np.arange(start, end, dtype=np.uint64), matrix)
        elif len(self._rows) >= self.exact_limit:
            self._build_graph()

    def remove(self, labels: Iterable[K]) -> None:
        rows = [self._rows.pop(label) for label in labels if label in self._rows]
        if not rows:
            return
        for row in rows:
            self._labels[row] = None
        self._dead[rows] = True
        if self._graph is not None:
            self._graph.remove(np.asarray(rows, dtype=np.uint64))
        if self._size - len(self._rows) > max(1024, self._size // 4):
            self._compact()

    def _reserve(self, rows: int) -> None:
        if rows <= len(self._matrix):
            return
        capacity = max(rows, 2 * len(self._matrix), 64)
        grown = np.zeros((capacity, self.dim), dtype=np.float32)
        grown[: self._size] = self._matrix[: self._size]
        dead = np.ones(capacity, dtype=bool)
        dead[: self._size] = self._dead[: self._size]
        self._matrix, self._dead = grown, dead

    def _compact(self) -> None:
        live = np.flatnonzero(~self._dead[: self._size])
        labels = [self._labels[r] for r in live]
        self._matrix = np.ascontiguousarray(self._matrix[live])
        self._dead = np.zeros(len(live), dtype=bool)
        self._labels = list(labels)
        self._rows = {label: row for row, label in enumerate(labels) if label is not None}
        self._size = len(live)
        self._graph = None
        if len(self._rows) >= self.exact_limit:
            self._build_graph()

    def _build_graph(self) -> None:
        from usearch.index import Index

        graph = Index(
            ndim=self.dim,
            metric="ip",
            dtype=DTYPE,
            connectivity=CONNECTIVITY,
            expansion_add=EXPANSION_ADD,
            expansion_search=EXPANSION_SEARCH,
        )
        live = np.flatnonzero(~self._dead[: self._size])
        if len(live):
            graph.add(live.astype(np.uint64), self._matrix[live])
        self._graph = graph

    # Search -------------------------------------------------------------------------------
    def search(self, queries: npt.ArrayLike, k: int) -> tuple[list[list[K]], Matrix]:
        """Each query's ``k`` most similar labels, best first, and their cosines (q, <=k).

        A row of cosines may end in -inf where the graph found fewer than ``k``; its labels
        list is then shorter.
        """
        matrix = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        k = min(k, len(self._rows))
        if k <= 0 or len(matrix) == 0:
            return [[] for _ in range(len(matrix))], np.zeros((len(matrix), 0), dtype=np.float32)
        rows, cosines = (
            self._search_graph(matrix, k) if self._graph is not None else self._exact(matrix, k)
        )
        found = np.isfinite(cosines)
        labels = [
            [self._labels[r] for r, ok in zip(row, keep, strict=True) if ok]
            for row, keep in zip(rows.tolist(), found.tolist(), strict=True)
        ]
        return labels, cosines

    def _exact(self, queries: Matrix, k: int) -> tuple[npt.NDArray[np.int64], Matrix]:
        _one_blas_thread()
        scores = queries @ self._matrix[: self._size].T
        if len(self._rows) < self._size:
            scores[:, self._dead[: self._size]] = -np.inf
        picked = top_k(scores, k)
        return picked, np.take_along_axis(scores, picked, axis=1)

    def _search_graph(self, queries: Matrix, k: int) -> tuple[npt.NDArray[np.int64], Matrix]:
        assert self._graph is not None
        wanted = max(k, self.candidates)
        from usearch.index import BatchMatches

        found = self._graph.search(queries, wanted)
        if isinstance(found, BatchMatches):
            keys = np.asarray(found.keys).astype(np.int64)
            counts = np.asarray(found.counts)
        else:  # one query: its matches alone
            keys = np.asarray(found.keys).astype(np.int64)[None, :]
            counts = np.array([keys.shape[1]])
        # Missing candidates (a sparse neighbourhood) point at row 0 and are masked below.
        valid = np.arange(keys.shape[1])[None, :] < counts[:, None]
        keys = np.where(valid, keys, 0)
        exact = np.einsum("qcd,qd->qc", self._matrix[keys], queries)
        exact = np.where(valid & ~self._dead[keys], exact, -np.inf).astype(np.float32)
        order = top_k(exact, k)
        rows = np.take_along_axis(keys, order, axis=1)
        cosines = np.take_along_axis(exact, order, axis=1)
        return rows, cosines
