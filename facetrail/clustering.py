"""Unknown faces -> clusters, incrementally, by average linkage on calibrated similarity.

Two groups of faces are one person when the mean similarity (the backend's calibrated 0-100
scale) over every pair of faces between them reaches a threshold: that is average linkage.
Existing clusters keep their faces (their ids are stable), so a pass over the pool (new faces,
and older ones still waiting) runs average linkage on the pool *together with* the existing
clusters near it, each cluster a group from the start that never breaks up:

1. the two groups with the highest mean similarity merge first, while that reaches ``link``
   (two groups of pool faces) or ``join`` (pool faces and a cluster: they join it); two
   existing clusters are not merged here. So a pool face goes to a cluster only if nothing in
   the pool is more like it: a look-alike of a cluster's person waits with the faces of its
   own person, as clustering everything at once would have it. The clusters compared are each
   face's ``candidates`` nearest by centroid (a :class:`facetrail.vectors.VectorIndex`) that it
   reaches ``join`` with through some member, and only their members are read. Pool groups of
   at least ``min_size`` faces become new clusters; smaller ones stay in the pool;
2. a cluster that grew is merged with the nearest other cluster it now reaches ``join`` with
   (the smaller into the larger), unless both are ``curated`` (a user merged, split or named
   them: two such clusters stay apart unless a user merges them) or the split's ``gap`` tells
   them apart (:func:`two_people`); the merges are returned so that the caller records them.

The caller then re-checks each existing cluster that grew (:func:`split_parts`): a cluster
keeps its faces while it is placed among the pool, so what was the best match when few faces
had arrived (two look-alikes whose first faces paired up, a pool group that joined whole) would
otherwise stay together for good as more faces of both join it.

``join`` may be stricter than ``link`` (never looser): a decision against an existing cluster
is final, and a face whose own people have not arrived yet must not settle for the closest
stranger. The thresholds were chosen by ``python -m bench.unknowns`` on sets it does not report
(docs/unknowns.md). scikit-learn's ``AgglomerativeClustering`` (``pool_groups``) has no way to
start from groups that must stay whole, so step 1 is written here; with no cluster near, it
groups a pool as scikit-learn does (a unit test holds them to it), and ``pool_groups`` serves
where there is no existing cluster to respect (the bench's reference). :func:`split_parts`
reads the tree of scipy's average linkage (the one scikit-learn runs) itself, since the split
gap judges each node's two branches, which a flat cut does not show.
Nothing here touches the database: :mod:`facetrail.services.unknowns` loads, calls and stores.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from facetrail.settings import Settings
from facetrail.vectors import VectorIndex, normalise

Matrix = npt.NDArray[np.float32]
# Cosines between embeddings -> the backend's 0-100 similarity (Backend.template_similarity).
Similarity = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]]

# Existing clusters a face or group is compared with: its nearest by centroid.
CANDIDATES = 4
# Pool faces clustered at once (the newest): average linkage keeps an n x n matrix.
POOL_LIMIT = 4000
# Clusters larger than this are not re-checked when they grow (split_parts keeps an n x n
# matrix, and a few strange faces among so many barely change a cluster's purity).
SPLIT_LIMIT = 2000


@dataclass(frozen=True)
class Params:
    """The ``unknown_*`` settings (their defaults, unless given)."""

    link: float = Settings.unknown_link
    join: float = Settings.unknown_join
    min_size: int = Settings.unknown_min_cluster_size
    # Two groups are two people when they are this much less alike between them than within
    # each (``two_people``); 0: off, only ``join`` tells them apart.
    gap: float = Settings.unknown_split_gap
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


def within_similarity(similarity: Similarity, a: Matrix) -> float:
    """The mean similarity over every pair of a group's faces (unit vectors); 0 for one face."""
    n = len(a)
    if n < 2:
        return 0.0
    scores = similarity(a @ a.T)
    return float((scores.sum() - np.trace(scores)) / (n * (n - 1)))


def two_people(
    between: float, within: tuple[float, float], sizes: tuple[int, int], params: Params
) -> bool:
    """Whether two groups of faces are two people, by the mean similarity ``between`` them and
    each one's own mean similarity ``within`` (``sizes``: their faces): below ``join``; or, with
    a ``gap``, at least that much below the less alike of the two's own, both groups having at
    least ``min_size`` faces (and two: one face has no own similarity).

    The second rule is relative: two look-alikes' faces may be more alike than ``join`` (deepface's
    K and L: 36 between, ~100 within each), yet far less than each person's own faces are. A gap
    in points of the calibrated scale, not a ratio: the scale is a probability (x100) that two
    faces are one person, and the settings speak it in points; the less alike group is the one
    compared, so a person whose faces vary (the lowest ``within``) is not taken apart from
    themselves."""
    if between < params.join:
        return True
    if params.gap <= 0 or min(sizes) < max(2, params.min_size):
        return False
    return between < min(within) - params.gap


def split_parts(similarity: Similarity, vectors: Matrix, params: Params) -> list[list[int]]:
    """Rows of one cluster's ``vectors`` (its faces, oldest first) in the parts that average
    linkage of them all tells apart; every row is in one part. The part that keeps the
    cluster's id comes first: the largest, so that the fewest faces change cluster (as a merge
    keeps the larger's id), or on a tie the one holding the oldest face; then the others,
    largest first. One part: the cluster is one person.

    The dendrogram (scipy's average linkage, the one scikit-learn runs) is read from the top:
    a node's two branches become separate parts when :func:`two_people` says so, and each
    branch is then looked at in turn; a node kept whole is one part, its branches not looked
    at. With the ``join`` rule alone this is the cut at ``join`` (average linkage never merges
    closer groups later); the ``gap`` rule looks below a split too, since a cluster may hold a
    stranger far from all (split at ``join``) and two look-alikes (a relative split below it).

    A cluster grows by joins taken one pass at a time, each against the cluster as it was;
    this looks at all its faces at once, as a user's ``split`` without faces does."""
    n = len(vectors)
    if n < 2:
        return [list(range(n))]
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    unit = normalise(vectors)
    scores = similarity(unit @ unit.T).astype(np.float64)
    distance = 1.0 - (scores + scores.T) / 200.0
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method="average")
    # Each node (n leaves, then one per row of the tree): its rows' count, the mean similarity
    # between its two branches (100 * (1 - its height)) and the sum over its pairs of rows.
    count = np.ones(2 * n - 1)
    between = np.zeros(2 * n - 1)
    pair_sum = np.zeros(2 * n - 1)
    for k, (left, right, height, size) in enumerate(tree.tolist()):
        node, left, right = n + k, int(left), int(right)
        count[node] = size
        between[node] = 100.0 * (1.0 - height)
        pair_sum[node] = (
            pair_sum[left] + pair_sum[right] + between[node] * count[left] * count[right]
        )

    def within(node: int) -> float:
        pairs = count[node] * (count[node] - 1) / 2
        return float(pair_sum[node] / pairs) if pairs else 0.0

    def rows(node: int) -> list[int]:
        found, stack = [], [node]
        while stack:
            top = stack.pop()
            if top < n:
                found.append(top)
            else:
                stack += [int(tree[top - n, 0]), int(tree[top - n, 1])]
        return sorted(found)

    parts: list[list[int]] = []
    stack = [2 * n - 2]
    while stack:
        node = stack.pop()
        if node < n:
            parts.append([node])
            continue
        left, right = int(tree[node - n, 0]), int(tree[node - n, 1])
        sizes = (int(count[left]), int(count[right]))
        if two_people(float(between[node]), (within(left), within(right)), sizes, params):
            stack += [left, right]
        else:
            parts.append(rows(node))
    # Largest first, then by first row: the same input always gives the same order.
    return sorted(parts, key=lambda g: (-len(g), g[0]))


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
    curated: Collection[int] = (),
) -> Plan:
    """Decide where ``faces`` (id -> embedding) go, given ``clusters`` (id -> its members'
    embeddings, one row each). With ``centroids`` (id -> mean embedding), a cluster's members
    are read from ``clusters`` only when a face near it is compared with it. Two ``curated``
    clusters are never merged; one that takes a curated one in is curated after. See the
    module's docstring for the two steps."""
    params = params or Params()
    curated = set(curated)
    out = Plan()
    if not faces:
        return out
    ids = sorted(faces)
    vectors = normalise(np.stack([faces[i] for i in ids]))
    existing = _Clusters(clusters, centroids, vectors.shape[1])

    # 1. The pool and its nearby clusters, by average linkage; the clusters stay whole.
    for target, group in _link_pool(existing, vectors, similarity, params):
        if target is None:
            out.groups.append([ids[row] for row in group])
        else:
            out.joins.update({ids[row]: target for row in group})
    joined: dict[int, list[int]] = {}
    for row, face in enumerate(ids):
        if face in out.joins:
            joined.setdefault(out.joins[face], []).append(row)
    for cluster, rows in sorted(joined.items()):
        existing.grow(cluster, vectors[rows])
    # Largest first, then by first face: the same input always gives the same order.
    out.groups.sort(key=lambda g: (-len(g), g[0]))

    # 2. A cluster that grew may now be one person with another.
    for cluster in sorted(joined):
        if cluster not in existing:
            continue  # merged away already
        mine = existing.members(cluster)
        for other in existing.nearest(normalise(mine.mean(axis=0)), params.candidates + 1)[0]:
            if other == cluster or (cluster in curated and other in curated):
                continue
            theirs = existing.members(other)
            between = mean_similarity(similarity, mine, theirs)
            if between < params.join:
                continue
            # Two look-alikes the split would take apart again stay apart: the split's own
            # rule (a merged cluster above SPLIT_LIMIT is never split, nor judged here).
            if params.gap > 0 and len(mine) + len(theirs) <= SPLIT_LIMIT:
                own = (within_similarity(similarity, mine), within_similarity(similarity, theirs))
                if two_people(between, own, (len(mine), len(theirs)), params):
                    continue
            # The larger keeps its id (the older on a tie): fewer faces change their cluster.
            big, small = sorted((cluster, other), key=lambda c: (-len(existing.members(c)), c))
            existing.fold(small, big)
            out.merges.append((small, big))
            if small in curated:
                curated.add(big)  # what a user put together stays together in it
            out.joins = {f: big if c == small else c for f, c in out.joins.items()}
            break
    return out


def _link_pool(
    existing: _Clusters, vectors: Matrix, similarity: Similarity, params: Params
) -> Iterator[tuple[int | None, list[int]]]:
    """Average linkage of the pool's faces (rows of ``vectors``) together with the existing
    clusters near them, each cluster a group from the start that never breaks up nor merges
    with another here. Yields (cluster, the pool rows that join it) and (None, a new group of
    at least ``min_size`` rows); rows yielded nowhere stay in the pool.

    Two groups merge only when some pair of faces between them reaches the threshold, so the
    linkage runs separately on each connected part of the graph of such pairs (pool faces, and
    each face's candidate clusters it reaches ``join`` with through a member): a pool of people
    unlike each other splits into small parts. Only candidate clusters have members read."""
    n = len(vectors)
    pool = similarity(vectors @ vectors.T).astype(np.float64)
    lowest = min(params.link, params.join)
    # The clusters worth comparing: each face's nearest by centroid, that it reaches
    # ``join`` with through at least one member (else no group holding it can join them).
    nearby: list[int] = []
    slot: dict[int, int] = {}  # cluster -> its node in the graph below
    sums: dict[int, dict[int, float]] = {}  # cluster -> pool row -> sum of similarities to it
    edges: list[tuple[int, int]] = []
    for row, candidates in enumerate(existing.nearest(vectors, params.candidates)):
        for cluster in candidates:
            members = existing.members(cluster)
            if not len(members):
                continue
            if cluster not in slot:
                slot[cluster] = n + len(nearby)
                nearby.append(cluster)
                sums[cluster] = {}
            scores = similarity(vectors[row] @ members.T)
            sums[cluster][row] = float(scores.sum())
            if scores.max() >= params.join:
                edges.append((row, slot[cluster]))
    linked = pool >= lowest
    np.fill_diagonal(linked, False)
    rows, cols = np.nonzero(linked)
    graph_rows = np.concatenate([rows, [e[0] for e in edges]]).astype(np.int64)
    graph_cols = np.concatenate([cols, [e[1] for e in edges]]).astype(np.int64)
    size = n + len(nearby)
    graph = coo_matrix((np.ones(len(graph_rows)), (graph_rows, graph_cols)), shape=(size, size))
    _, part_of = connected_components(graph, directed=False)
    parts: dict[int, list[int]] = {}
    for node, part in enumerate(part_of.tolist()):
        parts.setdefault(part, []).append(node)
    for nodes in sorted(parts.values()):
        faces = [node for node in nodes if node < n]
        near = [nearby[node - n] for node in nodes if node >= n]
        if not faces:
            continue
        # Atoms: the part's clusters, then its faces; sums of pairwise similarities between them.
        k = len(near) + len(faces)
        totals = np.zeros((k, k))
        sizes = np.ones(k)
        for j, cluster in enumerate(near):
            members = existing.members(cluster)
            known = sums[cluster]
            missing = [row for row in faces if row not in known]
            if missing:
                scores = similarity(vectors[missing] @ members.T).sum(axis=1)
                known.update(zip(missing, scores.tolist(), strict=True))
            totals[j, len(near) :] = totals[len(near) :, j] = [known[row] for row in faces]
            sizes[j] = len(members)
        totals[len(near) :, len(near) :] = pool[np.ix_(faces, faces)]
        owner = _agglomerate(totals, sizes, len(near), params.link, params.join)
        grouped: dict[int, list[int]] = {}
        for atom in range(len(near), k):
            grouped.setdefault(owner[atom], []).append(faces[atom - len(near)])
        for atom, group in sorted(grouped.items()):
            if atom < len(near):
                yield near[atom], group
            elif len(group) >= params.min_size:
                yield None, group


def _agglomerate(
    totals: npt.NDArray[np.float64],
    sizes: npt.NDArray[np.float64],
    fixed: int,
    link: float,
    join: float,
) -> list[int]:
    """Average linkage over atoms, the first ``fixed`` of them existing clusters: ``totals``
    holds the sums of pairwise similarities between atoms' faces, ``sizes`` their face counts.
    The two groups with the highest mean similarity merge first, while it reaches ``link``
    (two groups of the pool) or ``join`` (a pool group and a cluster; two clusters never merge
    here), a cluster keeping its place. Returns, for each atom, the atom whose group it ended in."""
    k = len(sizes)
    parent = np.arange(k)
    active = np.ones(k, bool)
    is_cluster = np.arange(k) < fixed
    best = np.full(k, -np.inf)  # each atom's best mean similarity to an atom it may merge with
    partner = np.zeros(k, np.int64)  # and that atom

    def scan(row: int) -> None:
        means = totals[row] / (sizes[row] * sizes)
        if is_cluster[row]:
            allowed = active & ~is_cluster & (means >= join)
        else:
            allowed = active & (means >= np.where(is_cluster, join, link))
        allowed[row] = False
        if allowed.any():
            means = np.where(allowed, means, -np.inf)
            partner[row] = int(np.argmax(means))
            best[row] = means[partner[row]]
        else:
            best[row] = -np.inf

    for row in range(k):
        scan(row)
    while True:
        row = int(np.argmax(best))
        if best[row] == -np.inf:
            break
        other = int(partner[row])
        # A cluster keeps its place (and id); of two pool groups, the first one's.
        if is_cluster[other] or (not is_cluster[row] and other < row):
            keep, gone = other, row
        else:
            keep, gone = row, other
        totals[keep] += totals[gone]
        totals[:, keep] += totals[:, gone]
        sizes[keep] += sizes[gone]
        active[gone] = False
        best[gone] = -np.inf
        parent[gone] = keep
        scan(keep)
        # Others' best partners: rescan those that had one of the two; the rest may prefer
        # the merged group (average linkage never makes it closer than the closer of the two).
        rest = np.flatnonzero(active)
        rest = rest[rest != keep]
        stale = np.isfinite(best[rest]) & np.isin(partner[rest], (keep, gone))
        for again in rest[stale].tolist():
            scan(again)
        rest = rest[~stale]
        means = totals[rest, keep] / (sizes[rest] * sizes[keep])
        if is_cluster[keep]:
            better = ~is_cluster[rest] & (means >= join)
        else:
            better = means >= np.where(is_cluster[rest], join, link)
        better &= means > best[rest]
        best[rest[better]] = means[better]
        partner[rest[better]] = keep
    roots = []
    for atom in range(k):  # each atom -> the atom whose group it ended in
        while parent[atom] != atom:
            atom = int(parent[atom])
        roots.append(atom)
    return roots
