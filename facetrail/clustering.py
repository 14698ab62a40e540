"""Unknown faces -> clusters, incrementally, by average linkage on calibrated similarity.

Two groups of faces are one person when the mean similarity (the backend's calibrated 0-100
scale) over every pair of faces between them reaches a threshold: that is average linkage.
scikit-learn's ``AgglomerativeClustering`` runs it on the pool of faces no cluster took yet; the
same test, against an existing cluster, lets clusters grow without being rebuilt, so their ids
stay stable. One pass over the pool (new faces, and older ones still waiting):

1. each face joins the existing cluster it is most like, when their mean similarity reaches
   ``join``; the clusters considered are its ``candidates`` nearest by centroid (a
   :class:`facetrail.vectors.VectorIndex`), and only their members are read;
2. the faces left are grouped by average linkage at ``link``; a group of at least ``min_size``
   faces joins an existing cluster it reaches ``join`` with, or else becomes a new cluster;
   smaller groups stay in the pool;
3. a cluster that grew is merged with the nearest other cluster it now reaches ``join`` with (the
   smaller into the larger); the merges are returned so that the caller records them.

``join`` may be stricter than ``link`` (never looser): a decision against an existing cluster
is taken early, without the competition that grouping a whole pool gives, and a face whose own
people have not arrived yet must not settle for the closest stranger. The thresholds were
chosen by ``python -m bench.unknowns`` on sets it does not report (docs/unknowns.md).
Nothing here touches the database: :mod:`facetrail.services.unknowns` loads, calls and stores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from facetrail.settings import Settings
from facetrail.vectors import VectorIndex, normalise

Matrix = npt.NDArray[np.float32]
# Cosines between embeddings -> the backend's 0-100 similarity (Backend.template_similarity).
Similarity = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]]

# Existing clusters a face or group is compared with: its nearest by centroid.
CANDIDATES = 4
# Pool faces clustered at once (the newest): average linkage keeps an n x n matrix.
POOL_LIMIT = 4000


@dataclass(frozen=True)
class Params:
    """The ``unknown_*`` settings (their defaults, unless given)."""

    link: float = Settings.unknown_link
    join: float = Settings.unknown_join
    min_size: int = Settings.unknown_min_cluster_size
    candidates: int = CANDIDATES


@dataclass
class Plan:
    """What one clustering pass decided; face and cluster ids are the caller's."""

    # face -> the existing cluster it joins (directly, or with its pool group)
    joins: dict[int, int] = field(default_factory=dict)
    # new clusters from the pool, each a list of faces
    groups: list[list[int]] = field(default_factory=list)
    # (cluster merged away, cluster it went into), in the order they happened
    merges: list[tuple[int, int]] = field(default_factory=list)


def mean_similarity(similarity: Similarity, a: Matrix, b: Matrix) -> float:
    """Average linkage between two groups of unit vectors: the mean pairwise similarity."""
    if not len(a) or not len(b):
        return 0.0
    return float(np.mean(similarity(a @ b.T)))


def pool_groups(similarity: Similarity, vectors: Matrix, params: Params) -> list[list[int]]:
    """Row indices of ``vectors`` grouped by average linkage; only groups of ``min_size``."""
    n = len(vectors)
    if n < max(2, params.min_size):
        return [[i] for i in range(n)] if params.min_size <= 1 else []
    from sklearn.cluster import AgglomerativeClustering

    distance = 1.0 - similarity(vectors @ vectors.T) / 100.0
    np.fill_diagonal(distance, 0.0)
    labels = AgglomerativeClustering(
        n_clusters=None,
        metric="precomputed",
        linkage="average",
        # Groups merge while their mean distance is below this: mean similarity above link.
        distance_threshold=1.0 - params.link / 100.0,
    ).fit_predict(distance)
    groups: dict[int, list[int]] = {}
    for row, label in enumerate(labels.tolist()):
        groups.setdefault(int(label), []).append(row)
    # Largest first, then by first row: the same input always gives the same order.
    found = [g for g in groups.values() if len(g) >= params.min_size]
    return sorted(found, key=lambda g: (-len(g), g[0]))


class _Clusters:
    """Existing clusters: an index of their centroids for finding candidates, and their
    members' embeddings, read only for the clusters a face or group is compared with."""

    def __init__(
        self, members: Mapping[int, Matrix], centroids: Mapping[int, Matrix] | None, dim: int
    ) -> None:
        self._source = members
        self._loaded: dict[int, Matrix] = {}
        self.index: VectorIndex[int] = VectorIndex(dim)
        if centroids is None:
            centroids = {c: self.members(c).mean(axis=0) for c in members}
        ids = sorted(c for c, v in centroids.items() if np.any(v))
        if ids:
            self.index.add(ids, np.stack([centroids[c] for c in ids]))

    def __contains__(self, cluster: int) -> bool:
        return cluster in self.index

    def members(self, cluster: int) -> Matrix:
        if cluster not in self._loaded:
            self._loaded[cluster] = normalise(np.asarray(self._source[cluster], np.float32))
        return self._loaded[cluster]

    def nearest(self, queries: Matrix, k: int) -> list[list[int]]:
        if not len(self.index):
            return [[] for _ in range(len(queries))]
        labels, _ = self.index.search(queries, k)
        return labels

    def grow(self, cluster: int, vectors: Matrix) -> None:
        self._loaded[cluster] = np.concatenate([self.members(cluster), vectors])
        self.index.add([cluster], self._loaded[cluster].mean(axis=0)[None, :])

    def fold(self, source: int, target: int) -> None:
        self.grow(target, self.members(source))
        self.index.remove([source])
        del self._loaded[source]


def plan(
    faces: Mapping[int, Matrix],
    clusters: Mapping[int, Matrix],
    similarity: Similarity,
    params: Params | None = None,
    *,
    centroids: Mapping[int, Matrix] | None = None,
) -> Plan:
    """Decide where ``faces`` (id -> embedding) go, given ``clusters`` (id -> its members'
    embeddings, one row each). With ``centroids`` (id -> mean embedding), a cluster's members
    are read from ``clusters`` only when a face or group is compared with it. See the module's
    docstring for the three steps."""
    params = params or Params()
    out = Plan()
    if not faces:
        return out
    ids = sorted(faces)
    vectors = normalise(np.stack([faces[i] for i in ids]))
    existing = _Clusters(clusters, centroids, vectors.shape[1])
    touched: set[int] = set()

    # 1. Faces join the cluster they are most like, all against the clusters as they were.
    singles = [vectors[i : i + 1] for i in range(len(ids))]
    best = _best_clusters(existing, singles, similarity, params, params.join)
    joined: dict[int, list[int]] = {}
    for row, cluster in enumerate(best):
        if cluster is not None:
            out.joins[ids[row]] = cluster
            joined.setdefault(cluster, []).append(row)
    for cluster, rows in sorted(joined.items()):
        existing.grow(cluster, vectors[rows])
        touched.add(cluster)

    # 2. The rest are clustered among themselves; a group may still join a cluster whole.
    left = [row for row in range(len(ids)) if ids[row] not in out.joins]
    groups = [[left[i] for i in g] for g in pool_groups(similarity, vectors[left], params)]
    targets = _best_clusters(
        existing, [vectors[g] for g in groups], similarity, params, params.join
    )
    for group, cluster in zip(groups, targets, strict=True):
        if cluster is None:
            out.groups.append([ids[row] for row in group])
            continue
        out.joins.update({ids[row]: cluster for row in group})
        existing.grow(cluster, vectors[group])
        touched.add(cluster)

    # 3. A cluster that grew may now be one person with another.
    for cluster in sorted(touched):
        if cluster not in existing:
            continue  # merged away already
        mine = existing.members(cluster)
        for other in existing.nearest(normalise(mine.mean(axis=0)), params.candidates + 1)[0]:
            if other == cluster:
                continue
            if mean_similarity(similarity, mine, existing.members(other)) < params.join:
                continue
            # The larger keeps its id (the older on a tie): fewer faces change their cluster.
            big, small = sorted((cluster, other), key=lambda c: (-len(existing.members(c)), c))
            existing.fold(small, big)
            out.merges.append((small, big))
            out.joins = {f: big if c == small else c for f, c in out.joins.items()}
            break
    return out


def _best_clusters(
    clusters: _Clusters,
    groups: Sequence[Matrix],
    similarity: Similarity,
    params: Params,
    threshold: float,
) -> list[int | None]:
    """For each group of vectors, the candidate cluster with the highest mean similarity to
    it, where that reaches ``link``; else None."""
    if not groups or not len(clusters.index):
        return [None] * len(groups)
    centroids = normalise(np.stack([g.mean(axis=0) for g in groups]))
    nearest = clusters.nearest(centroids, params.candidates)
    out: list[int | None] = []
    for group, candidates in zip(groups, nearest, strict=True):
        scored = [(mean_similarity(similarity, group, clusters.members(c)), c) for c in candidates]
        score, cluster = max(scored, key=lambda s: (s[0], -s[1]), default=(0.0, -1))
        out.append(cluster if score >= threshold else None)
    return out
