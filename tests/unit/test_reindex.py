"""Re-indexing into another model: searches switch over only once the new index is complete."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facetrail.api import Facetrail
from facetrail.db import session_scope
from facetrail.jobs import job_type
from facetrail.jobs.reindex import ReindexRequest
from facetrail.jobs.runner import pending_item_ids, run_item
from facetrail.models import Collection, Face, LocalCollection, LocalFace
from facetrail.settings import Settings
from tests.conftest import KNN, KNN_EXPECTED, knn_test_images


def reindex(session: Session, settings: Settings) -> int:
    """Create (not run) a job re-indexing "band" with the dlib embedder."""
    request = ReindexRequest(collection="band", embedder="dlib")
    return job_type("reindex").create(session, settings, request).id


def names(report: dict[str, object]) -> dict[str, set[str]]:
    images = report["images"]
    assert isinstance(images, list)
    return {Path(i["image"]).name: {f["person"] for f in i["faces"] if f["person"]} for i in images}


def models_in_use(settings: Settings) -> tuple[str, set[str], set[str]]:
    with session_scope(settings) as session:
        collection = session.scalars(select(Collection)).one()
        faces = set(session.scalars(select(Face.model_version)))
        local = set(session.scalars(select(LocalFace.model_version)))
        return collection.model_version, faces, local


def test_reindex_to_another_embedder(settings: Settings) -> None:
    ft = Facetrail(settings)
    ft.enroll("band", KNN / "train")
    before, _, _ = models_in_use(settings)
    assert "mobilefacenet" in before

    report = ft.reindex("band", embedder="dlib")
    assert report["status"] == "succeeded" and report["switched"], report
    model, faces, local = models_in_use(settings)
    assert "dlib" in model and faces == {model} and local == {model}
    with session_scope(settings) as session:
        assert session.scalar(select(func.count()).select_from(Face)) == 9
        # The old index is gone from the backend.
        assert [c.name for c in session.scalars(select(LocalCollection))] == [
            f"band.reindex-{report['job_id']}"
        ]
    # The settings still say mobilefacenet: the collection's pinned embedder wins.
    assert names(ft.identify("band", knn_test_images())) == KNN_EXPECTED
    # The identify job's unknown faces were clustered after it (docs/unknowns.md).
    actions = [e["action"] for e in ft.audit_log("band")]
    assert actions[:2] == ["unknowns_cluster", "reindex"]


def test_searches_use_the_old_index_until_the_new_one_is_complete(settings: Settings) -> None:
    ft = Facetrail(settings)
    ft.enroll("band", KNN / "train")
    old_model, _, _ = models_in_use(settings)
    with session_scope(settings) as session:
        job_id = reindex(session, settings)
    with session_scope(settings) as session:
        items = pending_item_ids(session, job_id)

    for item_id in items[:-1]:
        run_item(settings, item_id)
    # Most faces are re-embedded, but searches still run on the complete old index only.
    model, faces, _ = models_in_use(settings)
    assert model == old_model and len(faces) == 2
    assert names(ft.identify("band", knn_test_images())) == KNN_EXPECTED
    run_item(settings, items[-1])
    assert models_in_use(settings)[0] != old_model
    assert names(ft.identify("band", knn_test_images())) == KNN_EXPECTED


def test_reindex_falls_back_to_stored_crops(settings: Settings, tmp_path: Path) -> None:
    photos = tmp_path / "train"
    shutil.copytree(KNN / "train", photos)
    ft = Facetrail(settings)
    ft.enroll("band", photos)
    shutil.rmtree(photos)
    report = ft.reindex("band", embedder="dlib")
    failed = [i for i in report["images"] if i["status"] != "succeeded"]
    assert report["switched"], failed
    assert names(ft.identify("band", knn_test_images())) == KNN_EXPECTED


def test_reindex_refuses_when_collection_changes_meanwhile(settings: Settings) -> None:
    ft = Facetrail(settings)
    ft.enroll("band", KNN / "train")
    old_model, _, _ = models_in_use(settings)
    with session_scope(settings) as session:
        job_id = reindex(session, settings)
    ft.rename_person("band", "obama", display_name="Barack Obama")
    ft._run(job_id, wait=True, progress=None)
    report = ft.job(job_id)
    assert report["status"] == "succeeded" and not report["switched"]
    assert "changed while it was being re-indexed" in report["error"]
    assert models_in_use(settings)[0] == old_model


def test_a_collection_keeps_its_detector_and_reindexes_to_another(settings: Settings) -> None:
    """Switching FACETRAIL_DETECTOR leaves existing collections searched with the detector they
    were built with (their vectors come from its landmarks); a re-index moves one over."""
    Facetrail(settings).enroll("band", KNN / "train")
    with session_scope(settings) as session:
        collection = session.scalars(select(Collection)).one()
        assert collection.backend_options["detector"] == settings.detector == "retinaface-onet"
        assert collection.model_version.startswith("retinaface-onet/")

    switched = Facetrail(settings.with_(detector="mtcnn"))
    assert names(switched.identify("band", knn_test_images())) == KNN_EXPECTED
    identified = switched.jobs(limit=1)[0]
    assert identified["model_version"].startswith("retinaface-onet/"), identified

    report = Facetrail(settings).reindex("band", detector="mtcnn")
    assert report["status"] == "succeeded" and report["switched"], report
    model, faces, local = models_in_use(settings)
    assert model.startswith("mtcnn-tflite/") and faces == {model} and local == {model}
    # The settings still say retinaface-onet: the collection's pinned detector wins.
    assert names(Facetrail(settings).identify("band", knn_test_images())) == KNN_EXPECTED
