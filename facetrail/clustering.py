"""Unknown faces -> clusters, incrementally, by average linkage on calibrated similarity.

One rule decides everything: two groups of faces are one person when the mean similarity (the
backend's calibrated 0-100 scale) over every pair of faces between them reaches ``link``. That
is average linkage; scikit-learn's ``AgglomerativeClustering`` runs it on the pool of faces no
cluster took, and the same rule, applied to a face or a group against an existing cluster, lets
clusters grow without being rebuilt, so their ids stay stable:

1. each candidate face (new, or still in the pool) joins the existing cluster it is most like,
   when that cluster's mean similarity to it reaches ``link``; the clusters considered are its
   ``candidates`` nearest by centroid (a :class:`facetrail.vectors.VectorIndex`);
2. the faces left are clustered by average linkage; a group of at least ``min_size`` faces joins
   an existing cluster it reaches ``link`` with, or else becomes a new cluster;
3. clusters that grew are merged with another cluster they now reach ``link`` with (the smaller
   into the larger): the merges are returned so that the caller records them.

The link similarity and the minimum size were chosen on glint_celebrity_chips by
``python -m bench.unknowns`` (docs/unknowns.md), which reports the sets it did not choose on.
Nothing here touches the database: :mod:`facetrail.services.unknowns` loads, calls and stores.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from facetrail.vectors import VectorIndex, normalise

Matrix = npt.NDArray[np.float32]
# Cosines between embeddings -> the backend's 0-100 similarity (Backend.template_similarity).
Similarity = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]]

# Defaults chosen on glint_celebrity_chips (bench.unknowns): the loosest link whose clusters
# stayed at least 0.98 pure there, and pairs allowed to form a cluster.
LINK_SIMILARITY = 10.0
JOIN_SIMILARITY = 50.0
MIN_CLUSTER_SIZE = 2
# Existing clusters a face or group is compared with: its nearest by centroid.
CANDIDATES = 4
# Pool faces clustered at once (the newest): average linkage keeps an n x n matrix.
POOL_LIMIT = 4000


@dataclass(frozen=True)
class Params:
    link: float = LINK_SIMILARITY
    join: float = JOIN_SIMILARITY
    min_size: int = MIN_CLUSTER_SIZE
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
