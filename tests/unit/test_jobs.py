"""Enrollment and identification jobs on the embedded default (in-process, SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from facetrail.api import Facetrail
from facetrail.db import session_scope
from facetrail.jobs import job_type
from facetrail.jobs.base import Claim
from facetrail.jobs.runner import AlreadyFinishedError, Context, claim, fail, run_item
from facetrail.models import Collection, Face, FaceResult, ItemStatus, JobItem, LocalFace
from facetrail.settings import Settings
from tests import badinputs
from tests.conftest import DATA, KNN, KNN_EXPECTED, knn_test_images

NO_FACE = DATA / "dlib" / "dlib" / "test" / "ffmpeg_data" / "eagle.jpg"


def named(image: dict[str, object]) -> set[str]:
    faces = image["faces"]
    assert isinstance(faces, list)
    return {f["person"] for f in faces if f["person"]}


def test_enroll_then_identify_knn_examples(settings: Settings) -> None:
    ft = Facetrail(settings)
    enrolled = ft.enroll("knn", KNN / "train")
    assert enrolled["status"] == "succeeded", enrolled
    assert enrolled["succeeded"] == 9
    report = ft.identify("knn", knn_test_images())
    assert report["status"] == "succeeded"
    assert report["collection_version"] == 9
    for image in report["images"]:
        assert named(image) == KNN_EXPECTED[Path(image["image"]).name], image
        for face in image["faces"]:
            if face["person"]:
                assert face["similarity"] >= settings.match_threshold
            assert set(face["box"]) == {"left", "top", "width", "height"}


def test_bad_inputs_fail_alone_and_the_batch_goes_on(settings: Settings, tmp_path: Path) -> None:
    ft = Facetrail(settings)
    ft.enroll("knn", KNN / "train")
    good = KNN / "test" / "obama1.jpg"
    cases = {
        str(good): ("succeeded", None),
        str(badinputs.corrupt_jpeg(tmp_path)): ("failed", "invalid_image"),
        str(badinputs.zero_bytes(tmp_path)): ("failed", "invalid_image"),
        str(badinputs.text_as_jpg(tmp_path)): ("failed", "invalid_image"),
        str(badinputs.WEBP_AS_JPG): ("succeeded", None),
        str(badinputs.PNG_32BIT): ("succeeded", None),
        str(badinputs.exif_rotated(tmp_path)): ("succeeded", None),
        str(badinputs.decompression_bomb(tmp_path)): ("failed", "image_too_large"),
        str(NO_FACE): ("succeeded", None),
        str(badinputs.missing(tmp_path)): ("failed", "image_not_found"),
    }
    report = ft.identify("knn", list(cases))
    assert report["status"] == "partial"
    assert (report["succeeded"], report["failed"]) == (5, 5)
    by_source = {i["image"]: i for i in report["images"]}
    assert list(by_source) == list(cases)  # every input is reported, in order
    for source, (status, code) in cases.items():
        item = by_source[source]
        assert (item["status"], item["error_code"]) == (status, code), item
        if status == "failed":
            assert item["error"] and item["faces"] == []
    assert by_source[str(NO_FACE)]["faces"] == []
    # The EXIF-rotated and 32-bit copies still show obama upright.
    assert named(by_source[str(badinputs.PNG_32BIT)]) == {"obama"}
    rotated = next(s for s in cases if s.endswith("rotated.jpg"))
    assert named(by_source[rotated]) == {"obama"}


def test_enrollment_without_a_face_fails_that_item(settings: Settings) -> None:
    from facetrail.images.scan import EnrollEntry

    report = Facetrail(settings).enroll(
        "c",
        [
            EnrollEntry(str(NO_FACE), "eagle"),
            EnrollEntry(str(KNN / "train" / "obama" / "obama.jpg"), "obama"),
        ],
    )
    assert report["status"] == "partial"
    assert [i["error_code"] for i in report["images"]] == ["no_face", None]


def test_an_attempt_that_ends_after_another_finished_the_item_changes_nothing(
    settings: Settings,
) -> None:
    ft = Facetrail(settings)
    ft.enroll("knn", KNN / "train")
    report = ft.identify("knn", [KNN / "test" / "kit_with_rose.jpg", NO_FACE])
    assert (report["succeeded"], report["failed"]) == (2, 0)
    with session_scope(settings) as session:
        item_ids = list(
            session.scalars(
                select(JobItem.id)
                .where(JobItem.job_id == report["job_id"])
                .order_by(JobItem.position)
            )
        )
        # A second delivery claimed both items before the first delivery finished them.
        claims = []
        for item_id in item_ids:
            session.get_one(JobItem, item_id).status = ItemStatus.RUNNING
            session.flush()
            claimed = claim(session, item_id)
            assert isinstance(claimed, Claim)
            claims.append(claimed)
            session.get_one(JobItem, item_id).status = ItemStatus.SUCCEEDED
        rows = session.execute(select(FaceResult.id, FaceResult.person_external_id)).all()
    for claimed in claims:
        # The photo with faces (its retry clears earlier results first) and the one without.
        with pytest.raises(AlreadyFinishedError):
            job_type(claimed.kind).run(Context(settings, claimed), claimed)
    assert fail(settings, item_ids[0], "internal", "late").job_finished
    with session_scope(settings) as session:
        assert session.execute(select(FaceResult.id, FaceResult.person_external_id)).all() == rows
        statuses = session.scalars(select(JobItem.status).where(JobItem.id.in_(item_ids)))
        assert set(statuses) == {ItemStatus.SUCCEEDED}
    again = ft.job(report["job_id"])
    assert (again["status"], again["succeeded"], again["failed"]) == ("succeeded", 2, 0)


def test_items_are_idempotent(settings: Settings) -> None:
    ft = Facetrail(settings)
    first = ft.enroll("knn", KNN / "train")
    report = ft.identify("knn", [KNN / "test" / "kit_with_rose.jpg"])
    with session_scope(settings) as session:
        item = session.scalars(select(JobItem).where(JobItem.job_id == report["job_id"])).one()
        item_id = item.id
        results_before = session.scalar(select(func.count()).select_from(FaceResult))
        # A second delivery of a finished item changes nothing.

    assert run_item(settings, item_id).status == ItemStatus.SUCCEEDED
    # An attempt cut off mid-way (status left running) is redone without duplicating rows.
    with session_scope(settings) as session:
        session.get_one(JobItem, item_id).status = ItemStatus.RUNNING
    assert run_item(settings, item_id).status == ItemStatus.SUCCEEDED
    with session_scope(settings) as session:
        assert session.scalar(select(func.count()).select_from(FaceResult)) == results_before
        faces_before = session.scalar(select(func.count()).select_from(LocalFace))
    # Re-enrolling the same photos indexes nothing twice.
    second = ft.enroll("knn", KNN / "train")
    assert second["status"] == first["status"] == "succeeded"
    with session_scope(settings) as session:
        assert session.scalar(select(func.count()).select_from(LocalFace)) == faces_before
        assert session.scalar(select(func.count()).select_from(Face)) == faces_before


def test_identifying_in_another_embedding_space_fails_with_the_way_out(settings: Settings) -> None:
    ft = Facetrail(settings)
    ft.enroll("knn", KNN / "train")
    with session_scope(settings) as session:
        # As after the model files changed under a collection's pinned models.
        session.scalars(select(Collection)).one().model_version = "mobilefacenet@00000000"
    report = ft.identify("knn", [KNN / "test" / "kit_with_rose.jpg"])
    (image,) = report["images"]
    assert (image["status"], image["error_code"]) == ("failed", "invalid_parameter")
    assert "mobilefacenet@00000000" in image["error"] and "re-index" in image["error"]
