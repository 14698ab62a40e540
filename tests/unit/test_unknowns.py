"""Clusters of unknown faces: the clustering itself, and the service on its records.

Most tests build identify results directly (synthetic embeddings of a few made-up people, near
orthogonal to each other), so they say exactly which face should go where; one runs the real
pipeline on photos and draws the contact sheet.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import delete, func, select

from bench.datasets import load_celeba_identities
from facetrail import clustering, contact_sheet
from facetrail.api import Facetrail
from facetrail.backends.local.backend import LocalBackend
from facetrail.backends.local.calibration import similarity as calibrated
from facetrail.backends.local.vectors import to_blob
from facetrail.db import session_scope
from facetrail.errors import InvalidParameterError, NotFoundError
from facetrail.migrate import ensure_schema
from facetrail.models import (
    AuditEvent,
    ClusterStatus,
    FaceResult,
    Image,
    ItemStatus,
    Job,
    JobItem,
    JobKind,
    JobStatus,
    PastFaceChange,
    UnknownCluster,
    UnknownFace,
)
from facetrail.services import catalog, records, unknowns
from facetrail.settings import Settings
from facetrail.vectors import normalise
from tests.conftest import DATA

DIM = 192
RNG = np.random.default_rng(7)
# Made-up people: random directions in 192 dimensions are nearly orthogonal (similarity ~0).
CENTRES = {name: RNG.normal(size=DIM) for name in ("ann", "bob", "cid", "dee")}


def _look_alike(centre: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """A direction at ``cosine`` to ``centre``."""
    unit = centre / np.linalg.norm(centre)
    other = rng.normal(size=DIM)
    other -= (other @ unit) * unit
    direction: np.ndarray = cosine * unit + np.sqrt(1 - cosine**2) * other / np.linalg.norm(other)
    return direction


# Two look-alikes, as deepface's K and L: with little noise (0.05) their faces are about 34
# like each other's, between the link (30) and a stricter join (40, STRICT_JOIN), and about
# 100 like their own person's. (Their own generator: the people above stay as they were.)
_LOOKS = np.random.default_rng(11)
STRICT_JOIN = {"unknown_link": 30.0, "unknown_join": 40.0}
# The clustering settings these scenarios are written for (the defaults are chosen by
# bench.unknowns and may move): pairs of faces make a cluster.
SCENARIO = {
    "unknown_link": 20.0,
    "unknown_join": 30.0,
    "unknown_min_cluster_size": 2,
    "unknown_split_gap": 60.0,
}
CENTRES["kim"] = _LOOKS.normal(size=DIM)
CENTRES["lee"] = _look_alike(CENTRES["kim"], 0.48, _LOOKS)


def face_of(person: str, noise: float = 0.5, rng: np.random.Generator | None = None) -> np.ndarray:
    """A face of ``person``: their direction plus noise (pairwise cosine ~0.8, similarity ~99)."""
    centre = CENTRES[person] / np.linalg.norm(CENTRES[person])
    v = centre + noise * (rng or RNG).normal(size=DIM) / np.sqrt(DIM)
    face: np.ndarray = (v / np.linalg.norm(v)).astype(np.float32)
    return face


def similarity(cosines: np.ndarray) -> np.ndarray:
    return calibrated("mobilefacenet", cosines)


@pytest.fixture(autouse=True)
def _same_faces_whatever_ran_before() -> None:
    """Each test draws its faces from the same start, whatever ran before: other modules import
    ``face_of`` and draw from ``RNG`` too, and the look-alikes' margins (about 34 between them,
    against a link of 30 and a strict join of 40) are thin enough that other draws can cross
    them (seen: the split test failed after tests/integration/test_unknowns.py had drawn)."""
    RNG.bit_generator.state = np.random.default_rng(7).bit_generator.state


# The clustering ----------------------------------------------------------------------------------
def test_a_pool_of_two_people_becomes_two_clusters_and_a_single_face_waits() -> None:
    faces = {i: face_of("ann") for i in range(4)} | {10 + i: face_of("bob") for i in range(3)}
    faces[99] = face_of("cid")
    decided = clustering.plan(faces, {}, similarity)
    assert sorted(map(sorted, decided.groups)) == [[0, 1, 2, 3], [10, 11, 12]]
    assert decided.joins == {} and decided.merges == []


def test_new_faces_join_the_cluster_of_their_person() -> None:
    clusters = {7: np.stack([face_of("ann") for _ in range(3)]), 8: np.stack([face_of("bob")])}
    decided = clustering.plan(
        {1: face_of("bob"), 2: face_of("ann"), 3: face_of("cid")}, clusters, similarity
    )
    assert decided.joins == {1: 8, 2: 7}
    assert decided.groups == []  # one face of cid is not yet a cluster


def test_a_group_from_the_pool_joins_a_cluster_it_is_like() -> None:
    """Two faces that each fell short of joining alone still go to their cluster together, if
    together they reach it (here: the join threshold set above any single face's score)."""
    clusters = {5: np.stack([face_of("ann") for _ in range(3)])}
    params = clustering.Params(link=20, join=20, min_size=2)
    decided = clustering.plan({1: face_of("ann"), 2: face_of("ann")}, clusters, similarity, params)
    assert decided.joins == {1: 5, 2: 5} and decided.groups == []


def test_two_clusters_of_one_person_merge_into_the_larger() -> None:
    clusters = {
        3: np.stack([face_of("ann", 0.9) for _ in range(2)]),
        4: np.stack([face_of("ann", 0.9) for _ in range(5)]),
    }
    decided = clustering.plan({1: face_of("ann", 0.9)}, clusters, similarity)
    assert decided.merges == [(3, 4)]
    assert decided.joins == {1: 4}  # wherever it first joined, it ends in the merged cluster
    # One curated (a user merged, split or named it): still merged. Both: a user keeps them
    # apart, only a user merges them.
    one = clustering.plan({1: face_of("ann", 0.9)}, clusters, similarity, curated={3})
    assert one.merges == [(3, 4)]
    both = clustering.plan({1: face_of("ann", 0.9)}, clusters, similarity, curated={3, 4})
    assert both.merges == [] and len(set(both.joins.values())) == 1


def test_split_parts_are_the_people_of_a_cluster_the_largest_first() -> None:
    """A cluster of one kim face, one lee face, then three lee faces: at 40 the parts are
    lee's (the largest: it keeps the id) and kim's; at 30 (below their 34) it is one part; on
    a tie the part holding the oldest face (the first row) comes first."""
    kim = [face_of("kim", 0.05) for _ in range(2)]
    lee = [face_of("lee", 0.05) for _ in range(4)]
    assert 30 < similarity(np.array([kim[0] @ lee[0]]))[0] < 40
    vectors = np.stack([kim[0], lee[0], *lee[1:], kim[1]])
    assert clustering.split_parts(similarity, vectors, clustering.Params(join=40)) == [
        [1, 2, 3, 4],
        [0, 5],
    ]
    assert clustering.split_parts(similarity, vectors, clustering.Params(join=30, gap=0)) == [
        [0, 1, 2, 3, 4, 5]
    ]
    tie = np.stack([lee[0], kim[0], lee[1], kim[1]])
    assert clustering.split_parts(similarity, tie, clustering.Params(join=40)) == [[0, 2], [1, 3]]


def test_split_parts_without_a_gap_are_scikit_learns_cut_at_the_join() -> None:
    """split_parts reads scipy's tree itself; with the gap off its parts are the flat cut of
    scikit-learn's average linkage at the join similarity. Clusters of up to four people
    around one face (so that how many parts there are depends on the join), 60 of them."""
    rng = np.random.default_rng(23)
    depends = 0
    for _ in range(60):
        base = rng.normal(size=DIM)
        people = base + rng.uniform(0.6, 1.2) * rng.normal(size=(int(rng.integers(1, 5)), DIM))
        n = int(rng.integers(2, 30))
        faces = people[rng.integers(0, len(people), n)]
        faces += rng.uniform(0.2, 0.6) * rng.normal(size=(n, DIM))
        vectors = normalise(faces.astype(np.float32))
        found = []
        for join in (20.0, 30.0, 40.0, 60.0):
            cut = clustering.Params(link=join, join=join, min_size=1)
            expected = clustering.pool_groups(similarity, vectors, cut)
            parts = clustering.split_parts(similarity, vectors, clustering.Params(join=join, gap=0))
            assert parts == expected
            found.append(len(parts))
        depends += len(set(found)) > 1
    assert depends >= 10


def test_look_alikes_more_alike_than_the_join_are_told_apart_by_the_gap() -> None:
    """kim's and lee's faces (interleaved, as they arrive) are about 35 alike, above the join
    similarity (30), so the join alone keeps them one person; each one's own faces are ~100
    alike, so with a gap of 40 (or 60) the parts are the two people."""
    rng = np.random.default_rng(21)
    kim = [face_of("kim", 0.05, rng) for _ in range(4)]
    lee = [face_of("lee", 0.05, rng) for _ in range(4)]
    vectors = np.stack([v for pair in zip(kim, lee, strict=True) for v in pair])
    between = clustering.mean_similarity(similarity, np.stack(kim), np.stack(lee))
    assert 30 < between < 40
    assert min(clustering.within_similarity(similarity, np.stack(p)) for p in (kim, lee)) > 99
    whole = [list(range(8))]
    assert clustering.split_parts(similarity, vectors, clustering.Params(join=30, gap=0)) == whole
    for gap in (40.0, 60.0):
        params = clustering.Params(join=30, gap=gap)
        assert clustering.split_parts(similarity, vectors, params) == [[0, 2, 4, 6], [1, 3, 5, 7]]
    # Each part needs the minimum cluster size: one face of lee is no person of its own here.
    few = np.stack([*kim, lee[0]])
    assert clustering.split_parts(similarity, few, clustering.Params(join=30, gap=40)) == [
        list(range(5))
    ]
    # Nor is a gap wider than theirs met (~100 - 35).
    params = clustering.Params(join=30, gap=70)
    assert clustering.split_parts(similarity, vectors, params) == whole


def test_one_persons_faces_with_ordinary_spread_are_not_split_by_the_gap() -> None:
    """Ten faces of ann with the spread that makes her own faces 75-90 alike: the top of the
    dendrogram joins two halves of hers about as alike as each half is within, far less than
    any gap swept apart; one part at every gap (and at the join alone)."""
    rng = np.random.default_rng(22)
    vectors = np.stack([face_of("ann", 0.9, rng) for _ in range(10)])
    assert 75 < clustering.within_similarity(similarity, vectors) < 90
    for gap in (0.0, 20.0, 40.0, 60.0):
        params = clustering.Params(join=30, gap=gap)
        assert clustering.split_parts(similarity, vectors, params) == [list(range(10))]


def test_the_plan_does_not_depend_on_the_order_of_faces() -> None:
    people = ["ann"] * 3 + ["bob"] * 3 + ["cid"] * 2 + ["dee"]
    vectors = [face_of(p) for p in people]
    first = clustering.plan(dict(enumerate(vectors)), {}, similarity)
    order = [8, 3, 0, 6, 1, 4, 7, 2, 5]
    shuffled = clustering.plan({order[i]: vectors[i] for i in range(9)}, {}, similarity)
    relabel = {order[i]: i for i in range(9)}
    assert sorted(sorted(g) for g in first.groups) == sorted(
        sorted(relabel[f] for f in g) for g in shuffled.groups
    )


def look_alikes() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Two faces of kim, two of lee: lee_1 is a look-alike of kim (similarity about 51 to
    kim's faces) and far more like lee_2 (about 100), who is not like kim (about 0.2)."""
    basis = np.eye(DIM, dtype=np.float32)
    kim = [basis[0], basis[0] + 0.05 * basis[3]]
    lee = [
        0.5 * basis[0] + np.sqrt(0.75) * basis[1],
        0.3 * basis[0] + 0.866 * basis[1] + 0.4 * basis[2],
    ]
    return [v / np.linalg.norm(v) for v in kim], [v / np.linalg.norm(v) for v in lee]


def test_a_look_alike_does_not_join_a_cluster_when_its_own_person_is_in_the_pool() -> None:
    """Two look-alike people arriving one after the other: kim's faces make a cluster, then two
    faces of lee arrive together. lee_1 reaches the join similarity with kim's cluster, but
    average linkage over the pool and the cluster puts lee's faces together first, and
    together they are not kim (mean about 26), as clustering all four faces at once says.
    Taking each pool face greedily to its best cluster first would put lee_1 in kim's cluster.
    (Link and join 30, gap off: the faces' similarities are set for those.)"""
    params = clustering.Params(link=30.0, join=30.0, min_size=2, gap=0.0)
    kim, lee = look_alikes()
    first = clustering.plan({1: kim[0], 2: kim[1]}, {}, similarity, params)
    assert first.groups == [[1, 2]]
    assert float(similarity(np.asarray(lee[0] @ kim[0], np.float32))) > params.join  # a look-alike

    decided = clustering.plan({3: lee[0], 4: lee[1]}, {7: np.stack(kim)}, similarity, params)
    assert decided.joins == {} and decided.merges == []
    assert decided.groups == [[3, 4]]
    at_once = clustering.pool_groups(similarity, np.stack([*kim, *lee]), params)
    assert sorted(at_once) == [[0, 1], [2, 3]]


@pytest.mark.parametrize(("join", "joins"), [(40.0, True), (60.0, False)])
def test_a_pool_group_joins_a_cluster_at_the_join_similarity(join: float, joins: bool) -> None:
    """Two faces like each other, both about 51 like a cluster: together they join it when
    the join similarity allows that, else they become a cluster of their own (the link
    similarity, lower, only groups pool faces)."""
    kim, lee = look_alikes()
    twin = lee[0] + 0.05 * np.eye(DIM, dtype=np.float32)[4]
    params = clustering.Params(link=20, join=join, min_size=2)
    decided = clustering.plan(
        {3: lee[0], 4: twin / np.linalg.norm(twin)}, {7: np.stack(kim)}, similarity, params
    )
    if joins:
        assert decided.joins == {3: 7, 4: 7} and decided.groups == []
    else:
        assert decided.joins == {} and decided.groups == [[3, 4]]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_without_clusters_the_pool_groups_as_scikit_learn_groups_it(seed: int) -> None:
    """The linkage that places a pool among clusters is average linkage: with no cluster
    there, it groups the pool exactly as scikit-learn's AgglomerativeClustering does."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=DIM)
    # People who share a direction, so that some are look-alikes (similarities spread 0-100).
    centres = [shared + rng.normal(size=DIM) * rng.uniform(0.6, 1.2) for _ in range(8)]
    vectors = []
    for centre in centres:
        for _ in range(int(rng.integers(1, 6))):
            v = centre / np.linalg.norm(centre) + rng.uniform(0.3, 0.9) * rng.normal(
                size=DIM
            ) / np.sqrt(DIM)
            vectors.append((v / np.linalg.norm(v)).astype(np.float32))
    matrix = np.stack(vectors)
    pairs = similarity(matrix @ matrix.T)[np.triu_indices(len(matrix), 1)]
    assert ((pairs > 5) & (pairs < 95)).any()  # not all clear-cut
    for params in (clustering.Params(), clustering.Params(link=20, join=60, min_size=1)):
        expected = clustering.pool_groups(similarity, matrix, params)
        found = clustering.plan(dict(enumerate(vectors)), {}, similarity, params).groups
        assert sorted(found) == sorted(expected)
        assert len(expected) > 1


def test_members_are_read_only_for_candidate_clusters() -> None:
    """With centroids given, only clusters near a face have their members read: its candidate,
    and the cluster nearest to the one it joined (could they now be one person?)."""
    read: list[int] = []

    class Members(dict[int, np.ndarray]):
        def __getitem__(self, key: int) -> np.ndarray:
            read.append(key)
            return super().__getitem__(key)

    members = Members({c: np.stack([face_of(p) for _ in range(3)]) for c, p in enumerate(CENTRES)})
    centroids = {c: m.mean(axis=0) for c, m in dict.items(members)}
    decided = clustering.plan(
        {1: face_of("ann")},
        members,
        similarity,
        clustering.Params(candidates=1),
        centroids=centroids,
    )
    assert decided.joins == {1: 0} and read[0] == 0 and len(set(read)) == 2


# The service, on records -------------------------------------------------------------------------
@dataclass
class Photo:
    """One photo of a synthetic identify job: its faces (person or None for a named face)."""

    faces: Sequence[tuple[str, dict[str, float]]]


class World:
    """A collection and identify jobs whose results are written directly."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        ensure_schema(settings)
        with session_scope(settings) as session:
            catalog.create_collection(session, settings, "band")
        self.model = LocalBackend(settings).model_version
        self.counter = itertools.count()
        self.truth: dict[int, str] = {}  # face result id -> person

    def identify(
        self, photos: Sequence[Photo], *, rerun_of: int | None = None, named: Sequence[str] = ()
    ) -> int:
        """An identify job (a re-run of ``rerun_of``); faces of people in ``named`` are named."""
        with session_scope(self.settings) as session:
            collection = records.get_collection(session, "band")
            job = Job(
                kind=JobKind.IDENTIFY,
                backend="local",
                collection_id=collection.id,
                collection_version=collection.version,
                status=JobStatus.SUCCEEDED,
                parameters={"collection": "band"},
                rerun_of_id=rerun_of,
                total_items=len(photos),
                succeeded_items=len(photos),
            )
            session.add(job)
            session.flush()
            for position, photo in enumerate(photos):
                n = next(self.counter)
                image = Image(
                    sha256=hashlib.sha256(str(n).encode()).hexdigest(),
                    source_uri=f"photo{n}.jpg",
                    size_bytes=1,
                    width=400,
                    height=400,
                    format="JPEG",
                )
                session.add(image)
                session.flush()
                item = JobItem(
                    job_id=job.id,
                    position=position,
                    source=f"photo{n}.jpg",
                    status=ItemStatus.SUCCEEDED,
                    image_id=image.id,
                )
                session.add(item)
                session.flush()
                for index, (person, extra) in enumerate(photo.faces):
                    result = FaceResult(
                        job_item_id=item.id,
                        face_index=index,
                        box_left=0.2 * index,
                        box_top=0.1,
                        box_width=extra.get("width", 0.2),
                        box_height=extra.get("width", 0.2),
                        confidence=extra.get("confidence", 99.9),
                        sharpness=extra.get("sharpness", 60.0),
                        brightness=50.0,
                        person_external_id=person if person in named else None,
                        candidates=[],
                        embedding=None
                        if extra.get("no_embedding")
                        else to_blob(face_of(person, extra.get("noise", 0.5))),
                        model_version=self.model,
                    )
                    session.add(result)
                    session.flush()
                    self.truth[result.id] = person
            return job.id

    def cluster(self, job_id: int) -> dict[str, object]:
        with session_scope(self.settings) as session:
            return unknowns.cluster_job(session, self.settings, job_id)

    def clusters(self) -> dict[str, list[str]]:
        """cluster label -> the people of its faces (sorted), for open and named clusters."""
        out: dict[str, list[str]] = {}
        with session_scope(self.settings) as session:
            rows = session.execute(
                select(UnknownFace.cluster_id, UnknownFace.face_result_id).where(
                    UnknownFace.cluster_id.is_not(None)
                )
            ).tuples()
            for cid, result in rows:
                out.setdefault(f"unknown-{cid}", []).append(self.truth[result])
        return {k: sorted(v) for k, v in out.items()}


def photos(*people: str, **extra: float) -> list[Photo]:
    return [Photo([(p, dict(extra))]) for p in people]


@pytest.fixture
def world(settings: Settings) -> World:
    return World(settings.with_(**SCENARIO))


def test_clusters_keep_their_ids_as_faces_arrive(world: World) -> None:
    world.cluster(world.identify(photos("ann", "ann", "bob", "bob", "cid")))
    first = world.clusters()
    assert sorted(first.values()) == [["ann", "ann"], ["bob", "bob"]]
    ann = next(k for k, v in first.items() if v[0] == "ann")

    summary = world.cluster(world.identify(photos("ann", "cid", "dee")))
    after = world.clusters()
    # ann's cluster kept its id and took the new face; cid's two faces (one waited in the
    # pool since the first job) are a new cluster; dee's one face waits.
    assert after[ann] == ["ann"] * 3
    assert sorted(after.values()) == [["ann"] * 3, ["bob", "bob"], ["cid", "cid"]]
    assert summary["joined"] == 1 and len(summary["new_clusters"]) == 1  # type: ignore[arg-type]
    assert summary["pooled"] == 1
    with session_scope(world.settings) as session:
        sizes = dict(session.execute(select(UnknownCluster.id, UnknownCluster.size)).tuples().all())
    assert sorted(sizes.values()) == [2, 2, 3]


def test_clustering_a_job_twice_changes_nothing(world: World) -> None:
    job = world.identify(photos("ann", "ann", "bob"))
    world.cluster(job)
    before = world.clusters()
    again = world.cluster(job)
    assert again["faces"] == 0 and world.clusters() == before
    with session_scope(world.settings) as session:
        events = session.scalar(select(func.count()).where(AuditEvent.action == "unknowns_cluster"))
    assert events == 1  # nothing new, nothing recorded


def test_a_job_clusters_its_own_faces_and_a_catch_up_takes_the_rest(world: World) -> None:
    missed = world.identify(photos("ann", "ann"))  # its clustering task was lost
    world.cluster(world.identify(photos("bob", "bob")))
    assert list(world.clusters().values()) == [["bob", "bob"]]
    caught = Facetrail(world.settings).cluster_unknowns("band")
    assert caught["faces"] == 2 and sorted(world.clusters().values()) == [
        ["ann", "ann"],
        ["bob", "bob"],
    ]
    assert world.cluster(missed)["faces"] == 0  # its late task finds nothing left to do


def test_named_faces_are_not_unknown_and_poor_faces_are_kept_out(world: World) -> None:
    job = world.identify(
        [
            Photo([("ann", {}), ("bob", {})]),  # bob is named by the job
            Photo([("ann", {})]),
            Photo([("ann", {"width": 0.05})]),  # 20 px in a 400 px photo
            Photo([("ann", {"sharpness": 3.0})]),
            Photo([("ann", {"confidence": 91.0})]),
            Photo([("ann", {"no_embedding": 1.0})]),
        ],
        named=["bob"],
    )
    summary = world.cluster(job)
    assert summary["kept_out"] == {"blurry": 1, "no_embedding": 1, "small": 1, "unsure": 1}
    assert list(world.clusters().values()) == [["ann", "ann"]]
    listing = Facetrail(world.settings).unknowns("band")
    assert listing["kept_out"] == summary["kept_out"] and listing["pool"] == 0


def test_quality_limits_are_settings(world: World) -> None:
    lenient = world.settings.with_(unknown_min_face_size=10, unknown_min_sharpness=1.0)
    job = world.identify(photos("ann", "ann", width=0.05, sharpness=3.0))
    with session_scope(lenient) as session:
        unknowns.cluster_job(session, lenient, job)
    assert list(world.clusters().values()) == [["ann", "ann"]]


def test_a_rerun_that_names_faces_takes_them_out_of_clusters(world: World) -> None:
    job = world.identify(photos("ann", "ann", "ann", "bob", "bob"))
    world.cluster(job)
    rerun = world.identify(photos("ann", "ann", "ann", "bob", "bob"), rerun_of=job, named=["ann"])
    summary = world.cluster(rerun)
    assert summary["named"] == 3 and len(summary["left"]) == 1  # type: ignore[arg-type]
    assert list(world.clusters().values()) == [["bob", "bob"]]
    # A re-run's faces are copies, never clustered themselves.
    with session_scope(world.settings) as session:
        assert session.scalar(select(func.count()).select_from(UnknownFace)) == 5
        statuses = set(session.scalars(select(UnknownCluster.status)))
    assert statuses == {ClusterStatus.OPEN}


def test_merge_split_and_erase_are_recorded(world: World) -> None:
    ft = Facetrail(world.settings.with_(actor="tester"))
    world.cluster(world.identify(photos("ann", "ann", "ann", "bob", "bob")))
    labels = {v[0]: k for k, v in world.clusters().items()}
    ann, bob = labels["ann"], labels["bob"]

    merged = ft.merge_unknowns("band", bob, ann)
    assert merged == {"merged": bob, "into": ann, "faces_moved": 2, "faces": 5}
    assert ft.unknown("band", bob)["merged_into"] == ann
    with pytest.raises(InvalidParameterError, match="merged into"):
        ft.merge_unknowns("band", bob, ann)

    # Split by itself: at the join similarity ann and bob are told apart again.
    split = ft.split_unknown("band", ann)
    assert split["cluster"] == ann and split["faces"] == 3 and split["pooled"] == 0
    (new,) = split["into"]
    assert world.clusters()[new["cluster"]] == ["bob", "bob"]

    # Split by hand: one face of ann's into a cluster of its own.
    face = ft.unknown("band", ann)["members"][0]["face"]
    by_hand = ft.split_unknown("band", ann, [face])
    assert by_hand["into"][0]["faces"] == 1 and by_hand["faces"] == 2
    with pytest.raises(InvalidParameterError, match="not in"):
        ft.split_unknown("band", ann, [face])

    erased = ft.erase_unknown("band", ann)
    assert erased["faces"] == 2 and erased["embeddings"] == 2
    with pytest.raises(NotFoundError):
        ft.unknown("band", "unknown-999")
    assert ann not in world.clusters()
    actions = [e["action"] for e in ft.audit_log("band") if e["action"].startswith("unknowns")]
    assert actions == [
        "unknowns_erase",
        "unknowns_split",
        "unknowns_split",
        "unknowns_merge",
        "unknowns_cluster",
    ]
    assert {e["actor"] for e in ft.audit_log("band")[:4]} == {"tester"}


def automatic_splits(settings: Settings) -> list[dict[str, object]]:
    with session_scope(settings) as session:
        return [
            e.details
            for e in session.scalars(
                select(AuditEvent).where(AuditEvent.action == "unknowns_split")
            )
            if e.details.get("automatic")
        ]


def test_look_alikes_whose_first_faces_paired_up_are_split_as_their_faces_arrive(
    world: World,
) -> None:
    """deepface's order 1 in small: kim's first face waits alone, lee's first face arrives in
    the next job and the two (about 34 alike, above the link similarity) become a cluster.
    More faces of kim join it; looked at all at once, its faces are two people at a join
    similarity stricter than the link (40), so lee's face leaves (back to the pool: one face
    is no cluster), the cluster keeping its id with kim's faces. When lee's faces come, they
    make a cluster of their own instead of joining kim's (as, without the split, they
    would)."""
    world.settings = world.settings.with_(**STRICT_JOIN)
    look = {"noise": 0.05}
    world.cluster(world.identify(photos("kim", **look)))
    world.cluster(world.identify(photos("lee", **look)))
    ((label, pair),) = world.clusters().items()
    assert pair == ["kim", "lee"]

    summary = world.cluster(world.identify(photos("kim", "kim", **look)))
    assert world.clusters() == {label: ["kim"] * 3}
    assert summary["split"] == [{"cluster": label, "into": [], "pooled": 1}]
    (event,) = automatic_splits(world.settings)
    assert event["cluster"] == label and event["pooled"] == 1

    world.cluster(world.identify(photos("lee", "lee", **look)))
    after = world.clusters()
    assert after[label] == ["kim"] * 3
    assert sorted(after.values()) == [["kim"] * 3, ["lee"] * 3]


def test_without_the_automatic_split_look_alikes_share_a_cluster(world: World) -> None:
    """The same arrivals with ``unknown_auto_split`` off: one cluster of both people, as before
    the split existed."""
    world.settings = world.settings.with_(unknown_auto_split=False, **STRICT_JOIN)
    look = {"noise": 0.05}
    for people in (["kim"], ["lee"], ["kim", "kim"], ["lee", "lee"]):
        world.cluster(world.identify(photos(*people, **look)))
    assert list(world.clusters().values()) == [["kim"] * 3 + ["lee"] * 3]
    assert automatic_splits(world.settings) == []


def test_look_alikes_more_alike_than_the_join_are_split_by_the_gap_and_stay_apart(
    world: World,
) -> None:
    """kim's and lee's first faces pair up at the join similarity 30 (they are about 34 alike)
    and their later faces join the pair, so the join alone leaves one cluster of both (the last
    step without the gap). With a gap of 40, the cluster is split once both parts hold two
    faces: kim's part keeps the id (a tie; it holds the oldest face). More faces of lee then
    join lee's cluster and the two are not merged back, though 34 reaches the join."""

    def arrive(settings: Settings) -> dict[str, object]:
        world.settings = settings
        look = {"noise": 0.05}
        summary: dict[str, object] = {}
        for people in (["kim"], ["lee"], ["kim", "kim"], ["lee", "lee"]):
            summary = world.cluster(world.identify(photos(*people, **look)))
        return summary

    plain = world.settings.with_(unknown_link=30.0, unknown_join=30.0)
    summary = arrive(plain.with_(unknown_split_gap=40.0))
    ((first, _),) = [(k, v) for k, v in world.clusters().items() if v[0] == "kim"]
    assert world.clusters()[first] == ["kim"] * 3
    (other,) = set(world.clusters()) - {first}
    assert world.clusters()[other] == ["lee"] * 3
    assert summary["split"] == [
        {"cluster": first, "into": [{"cluster": other, "faces": 3}], "pooled": 0}
    ]
    summary = world.cluster(world.identify(photos("lee", noise=0.05)))
    assert summary["joined"] == 1 and summary["merged"] == [] and summary["split"] == []
    assert world.clusters() == {first: ["kim"] * 3, other: ["lee"] * 4}

    with session_scope(world.settings) as session:
        session.execute(delete(UnknownFace))
        session.execute(delete(UnknownCluster))
    arrive(plain.with_(unknown_split_gap=0.0))
    assert list(world.clusters().values()) == [["kim"] * 3 + ["lee"] * 3]


def test_a_cluster_split_apart_keeps_its_id_with_its_largest_part(world: World) -> None:
    """Two faces of kim and one of lee make one cluster (the pool links them at about 34);
    three more of lee join it: lee's four faces keep the id, kim's two (the older faces) leave
    for a new cluster split from it: fewer faces change cluster."""
    world.settings = world.settings.with_(**STRICT_JOIN)
    look = {"noise": 0.05}
    world.cluster(world.identify(photos("kim", "kim", "lee", **look)))
    ((label, _),) = world.clusters().items()
    summary = world.cluster(world.identify(photos("lee", "lee", "lee", **look)))
    assert summary["joined"] == 3
    after = world.clusters()
    assert after[label] == ["lee"] * 4
    (other,) = set(after) - {label}
    assert after[other] == ["kim", "kim"]
    assert summary["split"] == [
        {"cluster": label, "into": [{"cluster": other, "faces": 2}], "pooled": 0}
    ]
    assert Facetrail(world.settings).unknown("band", other)["split_from"] == label


def test_a_users_merge_is_never_split_automatically(world: World) -> None:
    """A user says ann's and bob's clusters are one person: when the cluster grows, the
    automatic split leaves it whole (it would take bob's faces out again were the merge not
    recorded, as the last step shows by clearing the record)."""
    ft = Facetrail(world.settings.with_(actor="tester"))
    world.cluster(world.identify(photos("ann", "ann", "ann", "bob", "bob")))
    labels = {v[0]: k for k, v in world.clusters().items()}
    ft.merge_unknowns("band", labels["bob"], labels["ann"])
    ann = labels["ann"]
    assert ft.unknown("band", ann)["curated_at"] is not None

    summary = world.cluster(world.identify(photos("ann")))
    assert summary["joined"] == 1 and summary["split"] == []
    assert world.clusters()[ann] == ["ann"] * 4 + ["bob"] * 2
    assert automatic_splits(world.settings) == []

    with session_scope(world.settings) as session:  # as if nothing recorded the merge
        session.get_one(UnknownCluster, unknowns.cluster_id(ann)).curated_at = None
    world.cluster(world.identify(photos("ann")))
    assert world.clusters()[ann] == ["ann"] * 5
    assert len(automatic_splits(world.settings)) == 1


def test_a_users_merge_stays_whole_in_the_cluster_that_takes_it_in(world: World) -> None:
    """A cluster a user merged is merged automatically into a larger one of the same person:
    the larger is curated after, so the automatic split does not take bob's faces out."""
    world.cluster(world.identify(photos("ann", "ann", "bob", "bob")))
    labels = {v[0]: k for k, v in world.clusters().items()}
    Facetrail(world.settings).merge_unknowns("band", labels["bob"], labels["ann"])
    # Six faces of ann that join nothing (a join similarity nothing reaches): a new cluster.
    apart = world.settings.with_(unknown_join=100.0)
    with session_scope(apart) as session:
        unknowns.cluster_job(session, apart, world.identify(photos(*["ann"] * 6)))
    (larger,) = set(world.clusters()) - {labels["ann"]}

    summary = world.cluster(world.identify(photos("ann")))
    assert summary["merged"] == [{"source": labels["ann"], "target": larger}]
    assert summary["split"] == []
    assert world.clusters() == {larger: ["ann"] * 9 + ["bob"] * 2}
    assert Facetrail(world.settings).unknown("band", larger)["curated_at"] is not None


def test_clusters_a_user_split_apart_are_not_merged_again(world: World) -> None:
    """A user takes two of ann's faces into a cluster of their own: a new face of ann joins
    one of the two, and the automatic merge leaves them apart (both are curated)."""
    ft = Facetrail(world.settings)
    world.cluster(world.identify(photos("ann", "ann", "ann", "ann")))
    (label,) = world.clusters()
    faces = [m["face"] for m in ft.unknown("band", label)["members"][:2]]
    (part,) = ft.split_unknown("band", label, faces)["into"]
    summary = world.cluster(world.identify(photos("ann")))
    assert summary["joined"] == 1 and summary["merged"] == []
    assert sorted(map(len, world.clusters().values())) == [2, 3]
    assert ft.unknown("band", part["cluster"])["curated_at"] is not None


def test_erasing_a_cluster_erases_its_faces_in_reruns_too(world: World) -> None:
    job = world.identify(photos("ann", "ann", "bob", "bob"))
    world.cluster(job)
    rerun = world.identify(photos("ann", "ann", "bob", "bob"), rerun_of=job)
    again = world.identify(photos("ann", "ann", "bob", "bob"), rerun_of=rerun)
    ann = next(k for k, v in world.clusters().items() if v[0] == "ann")
    sheet = unknowns.sheet_path(world.settings, "band", unknowns.cluster_id(ann))
    sheet.parent.mkdir(parents=True)
    sheet.write_bytes(b"a contact sheet")

    assert Facetrail(world.settings).erase_unknown("band", ann)["embeddings"] == 6
    assert not sheet.exists()
    with session_scope(world.settings) as session:
        left = session.execute(
            select(JobItem.job_id, FaceResult.embedding.is_not(None))
            .join(FaceResult, FaceResult.job_item_id == JobItem.id)
            .order_by(JobItem.job_id, JobItem.position)
        ).all()
        cluster = session.get_one(UnknownCluster, unknowns.cluster_id(ann))
        assert cluster.status == ClusterStatus.ERASED and cluster.centroid is None
        # Out of every process's past-faces index too (services/past.py), at its next search.
        removed = session.scalars(
            select(PastFaceChange.face_result_id).where(PastFaceChange.added.is_(False))
        ).all()
        assert len(removed) == 6
    # In every job, ann's two faces lost their embeddings and bob's kept theirs.
    assert [kept for _, kept in left] == [False, False, True, True] * 3
    assert {j for j, _ in left} == {job, rerun, again}


def test_corrections_take_faces_out_and_keep_them_from_a_naming(world: World) -> None:
    """A face a correction names leaves its cluster; a face a correction says is not alice is
    not enrolled when the cluster is named alice."""
    from facetrail.services import corrections
    from facetrail.services.records import get_or_create_person

    world.cluster(world.identify(photos("ann", "ann", "ann", "ann")))
    (label,) = world.clusters()
    first, second, *_ = [
        m["face_result_id"] for m in Facetrail(world.settings).unknown("band", label)["members"]
    ]
    with session_scope(world.settings) as session:
        collection = records.get_collection(session, "band")
        get_or_create_person(session, collection, "alice", display_name="alice")
        corrections.correct_is(session, world.settings, "band", first, "ann")
        corrections.correct_not(session, world.settings, "band", second, "alice")
    assert world.clusters()[label] == ["ann"] * 3
    with session_scope(world.settings) as session:
        faces, refused = unknowns.naming_faces(session, "band", label, "alice")
        events = [e.action for e in session.scalars(select(AuditEvent))]
    assert len(faces) == 2 and [r["error"] for r in refused] == ["corrected: not alice"]
    assert "unknowns_named_by_correction" in events


def test_references_and_refusals(world: World) -> None:
    assert unknowns.cluster_id("unknown-42") == unknowns.cluster_id(" 42 ") == 42
    with pytest.raises(InvalidParameterError):
        unknowns.cluster_id("alice")
    world.cluster(world.identify(photos("ann", "ann")))
    (label,) = world.clusters()
    ft = Facetrail(world.settings)
    with pytest.raises(InvalidParameterError, match="into itself"):
        ft.merge_unknowns("band", label, label)
    with pytest.raises(InvalidParameterError, match="all of"):
        ft.split_unknown("band", label, [m["face"] for m in ft.unknown("band", label)["members"]])


# Contact sheets ----------------------------------------------------------------------------------
def tiles_drawn(sheet: PILImage.Image, count: int) -> list[bool]:
    """For each cell of the grid :func:`contact_sheet.layout` gives, whether something other
    than the background was drawn in it."""
    grid = contact_sheet.layout(count)
    pixels = np.asarray(sheet.convert("RGB"), dtype=np.int16)
    drawn = []
    for index in range(grid.columns * grid.rows):
        left, top, right, bottom = grid.cell(index)
        cell = pixels[top:bottom, left:right]
        drawn.append(bool(np.abs(cell - 255).max() > 40))
    return drawn


@pytest.mark.parametrize("count", [1, 5, 6, 7, 14])
def test_a_sheet_has_one_tile_per_face_in_its_grid(count: int, tmp_path: Path) -> None:
    tiles = [
        contact_sheet.Tile(PILImage.new("RGB", (90, 120), (i * 15 % 200, 80, 120)), ("#1", "a.jpg"))
        for i in range(count)
    ]
    path = tmp_path / "sheet.jpg"
    contact_sheet.draw_sheet("unknown-1", tiles).save(path, quality=90)
    with PILImage.open(path) as read:
        read.load()
        grid = contact_sheet.layout(count)
        assert read.format == "JPEG" and read.size == (grid.width, grid.height)
        assert grid.columns == min(count, contact_sheet.COLUMNS)
        assert tiles_drawn(read, count) == [True] * count + [False] * (
            grid.columns * grid.rows - count
        )


def test_the_contact_sheet_of_a_real_cluster(settings: Settings) -> None:
    """Photos of two people identified against an empty collection: their faces cluster, and
    the sheet shows each face once, cut from its photo, readable as a JPEG."""
    ft = Facetrail(settings)
    with session_scope(settings) as session:
        catalog.create_collection(session, settings, "band")
    people = load_celeba_identities(DATA)
    chosen = [sorted(people[p])[:4] for p in sorted(people)[:2]]
    ft.identify("band", [p for group in chosen for p in group])
    listing = ft.unknowns("band")
    assert listing["clusters"], listing
    label = listing["clusters"][0]["cluster"]
    shown = ft.unknown("band", label)
    path = ft.contact_sheet("band", label)
    assert path == unknowns.sheet_path(settings, "band", unknowns.cluster_id(label))
    count = len(shown["members"])
    with PILImage.open(path) as sheet:
        sheet.load()
        grid = contact_sheet.layout(count)
        assert sheet.size == (grid.width, grid.height)
        assert tiles_drawn(sheet, count) == [True] * count + [False] * (
            grid.columns * grid.rows - count
        )
    # Each face comes from a photo of the chosen people.
    images = {Path(m["image"]).name for m in shown["members"]}
    assert images <= {p.name for group in chosen for p in group}
    # The cluster searches the past as one person: its own faces are found.
    found = ft.search_past("band", cluster=label)
    assert found["query"] == {"cluster": label, "faces": count}
    assert {m["face_result_id"] for m in shown["members"]} <= {
        m["face_result_id"] for m in found["matches"]
    }


def test_the_command_line(
    cli: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from facetrail.cli.main import main

    for key, value in SCENARIO.items():
        monkeypatch.setenv(f"FACETRAIL_{key.upper()}", str(value))
    world = World(cli.with_(**SCENARIO))
    world.cluster(world.identify(photos("ann", "ann", "ann", "bob", "bob", "cid")))
    assert main(["unknowns", "list", "-c", "band"]) == 0
    assert "1 face(s) wait in the pool; kept out: none" in capsys.readouterr().out
    assert main(["unknowns", "list", "-c", "band", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    ann, bob = (c["cluster"] for c in listing["clusters"])  # largest first
    assert main(["unknowns", "show", ann, "-c", "band", "--no-sheet", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["members"]) == 3
    assert main(["unknowns", "merge", bob, ann, "-c", "band"]) == 0
    assert json.loads(capsys.readouterr().out)["faces"] == 5
    assert main(["unknowns", "split", ann, "-c", "band"]) == 0
    (split,) = json.loads(capsys.readouterr().out)["into"]
    assert main(["unknowns", "erase", split["cluster"], "-c", "band"]) == 0
    assert json.loads(capsys.readouterr().out)["faces"] == 2
    assert main(["unknowns", "name", "unknown-999", "x", "-c", "band"]) == 2
    assert "no cluster unknown-999" in capsys.readouterr().err
