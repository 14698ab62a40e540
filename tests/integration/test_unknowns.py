"""Unknown faces on PostgreSQL: clusterings of one collection that run at once, and a named
cluster's person erased leaving nothing of their faces anywhere."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from facetrail.api import Facetrail
from facetrail.db import session_scope
from facetrail.images import read_bytes
from facetrail.migrate import upgrade
from facetrail.models import (
    ClusterStatus,
    Face,
    FaceResult,
    Job,
    UnknownCluster,
    UnknownFace,
)
from facetrail.services import catalog, unknowns
from facetrail.settings import Settings
from tests.conftest import DATA
from tests.integration.test_erasure import Traces, scan_files, scan_tables
from tests.unit.test_unknowns import SCENARIO, World, photos

pytestmark = pytest.mark.services


@pytest.fixture
def shared(settings: Settings, postgres_url: str) -> Settings:
    shared = settings.with_(database_url=postgres_url, **SCENARIO)
    upgrade(shared)
    return shared


def test_clusterings_of_one_collection_at_once_place_each_face_once(shared: Settings) -> None:
    """Two jobs' clusterings in two threads: the collection's lock makes one wait for the
    other, so no face is placed twice and no cluster is made twice."""
    world = World(shared)
    jobs = [
        world.identify(photos("ann", "ann", "bob", "bob", "cid")),
        world.identify(photos("ann", "bob", "cid", "dee", "dee")),
    ]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def cluster(job: int) -> None:
        try:
            with session_scope(shared) as session:
                barrier.wait()
                unknowns.cluster_job(session, shared, job)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=cluster, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    clusters = world.clusters()
    assert sorted(clusters.values()) == [
        ["ann"] * 3,
        ["bob"] * 3,
        ["cid", "cid"],
        ["dee", "dee"],
    ]
    with session_scope(shared) as session:
        assert session.scalar(select(func.count()).select_from(UnknownFace)) == 10
        sizes = session.execute(select(UnknownCluster.id, UnknownCluster.size)).tuples().all()
    assert sorted(size for _, size in sizes) == [2, 2, 3, 3]


def test_erasing_the_person_a_cluster_was_named_as_leaves_none_of_its_faces(
    shared: Settings,
) -> None:
    """Name a cluster (enrollment from crops in the image store, a re-run), draw its contact
    sheet, then erase the person: the cluster, its faces' embeddings in every result, the
    crops and the sheet are gone, and no table or file holds the faces any more."""
    ft = Facetrail(shared)
    with session_scope(shared) as session:
        catalog.create_collection(session, shared, "band")
    photos_of = sorted((DATA / "deepface" / "tests" / "unit" / "dataset").glob("img*.jpg"))
    # deepface's cluster A (img1, img2, img4...): several photos of one person.
    chosen = [p for p in photos_of if p.name in {"img1.jpg", "img2.jpg", "img4.jpg", "img5.jpg"}]
    job = ft.identify("band", chosen)
    label = ft.unknowns("band")["clusters"][0]["cluster"]
    sheet = ft.contact_sheet("band", label)
    named = ft.name_unknown("band", label, "subject_qx7")
    assert named["status"] == "named" and named["enrolled"] == 4, named
    assert named["newly_named"] == 4 and len(named["reruns"]) == 1
    rerun = named["reruns"][0]["job_id"]

    cid = unknowns.cluster_id(label)
    traces = Traces(names=["subject_qx7", "subject qx7"])
    with session_scope(shared) as session:
        for face in session.scalars(select(Face)):
            assert face.embedding is not None and face.crop_jpeg is not None
            traces.add_embedding(face.embedding)
            traces.add_jpeg(face.crop_jpeg)
        theirs = session.scalars(
            select(FaceResult)
            .outerjoin(UnknownFace, UnknownFace.face_result_id == FaceResult.id)
            .where(
                (UnknownFace.cluster_id == cid) | (FaceResult.person_external_id == "subject_qx7")
            )
        ).all()
        assert len(theirs) == 8  # the first job's four faces and the re-run's copies
        for result in theirs:
            assert result.embedding is not None
            traces.add_embedding(result.embedding)
        centroid = session.get_one(UnknownCluster, cid).centroid
        assert centroid is not None
        traces.add_embedding(centroid)
        crops = [item.source for item in session.get_one(Job, named["job_id"]).items]
    for source in crops:  # the enrollment's crops, in the image store
        traces.add_jpeg(read_bytes(shared, source))
    traces.add_jpeg(sheet.read_bytes())
    found = {table for table, *_ in scan_tables(shared, traces)}
    assert found >= {"faces", "face_results", "unknown_clusters", "audit_log"}, found
    assert any(p.startswith("images/") for p, _ in scan_files(shared.home, traces))

    erased = ft.delete_person("band", "subject_qx7")
    assert erased["unknown_clusters"] == 1 and erased["unknown_faces"] == 4, erased

    assert scan_tables(shared, traces) == []
    assert scan_files(shared.home, traces) == []
    assert not sheet.exists()
    with session_scope(shared) as session:
        cluster = session.get_one(UnknownCluster, cid)
        assert cluster.status == ClusterStatus.ERASED and cluster.person_external_id is None
        assert cluster.centroid is None
        assert session.scalar(select(func.count()).where(UnknownFace.cluster_id == cid)) == 0
    # The jobs' reports stay, without the name.
    assert all(f["person"] is None for i in ft.job(rerun)["images"] for f in i["faces"])
    assert ft.job(job["job_id"])["status"] == "succeeded"
