"""Re-runs after collection changes, and renaming, merging and erasing people."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from facetrail.api import Facetrail
from facetrail.db import session_scope
from facetrail.images.scan import EnrollEntry, enroll_entries
from facetrail.models import Face, FaceResult, LocalFace, Person
from facetrail.services import people
from facetrail.settings import Settings
from tests.conftest import KNN, KNN_EXPECTED


def names(report: dict[str, object]) -> dict[str, set[str]]:
    images = report["images"]
    assert isinstance(images, list)
    return {Path(i["image"]).name: {f["person"] for f in i["faces"] if f["person"]} for i in images}


def copy_tests(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "photos"
    shutil.copytree(KNN / "test", folder)
    return sorted(folder.iterdir())


def test_rerun_names_a_newly_enrolled_person_and_reports_exactly_that(
    settings: Settings, tmp_path: Path
) -> None:
    ft = Facetrail(settings.with_(actor="tester"))
    everyone = enroll_entries(KNN / "train")
    ft.enroll("band", [e for e in everyone if e.external_id != "rose_leslie"])
    photos = copy_tests(tmp_path)
    first = ft.identify("band", photos)
    assert names(first)["kit_with_rose.jpg"] == {"kit_harington"}

    ft.enroll("band", [e for e in everyone if e.external_id == "rose_leslie"])
    # The photos are gone: the re-run must work from the stored embeddings alone.
    for photo in photos:
        photo.unlink()
    report = ft.rerun(first["job_id"])

    assert report["rerun_of"] == first["job_id"]
    assert report["status"] == "succeeded"
    assert report["collection_version_after"] > report["collection_version_before"]
    (change,) = report["changes"]
    assert Path(change["image"]).name == "kit_with_rose.jpg"
    assert (change["change"], change["before"], change["after"]) == (
        "named",
        None,
        "rose_leslie",
    )
    assert change["similarity_before"] is None and change["similarity_after"] >= 80
    assert names(ft.job(report["job_id"])) == KNN_EXPECTED
    actions = [e["action"] for e in ft.audit_log("band")]
    # Rose's face, unknown at first, waited in the pool of unknown faces until the re-run
    # named it (docs/unknowns.md).
    assert actions == ["unknowns_named_by_rerun", "rerun", "enroll", "unknowns_cluster", "enroll"]
    assert {e["actor"] for e in ft.audit_log("band")} == {"tester"}


def faces_of(report: dict[str, object]) -> list[list[tuple[str | None, float | None, list[str]]]]:
    images = report["images"]
    assert isinstance(images, list)
    return [
        [
            (
                f["person"],
                None if f["similarity"] is None else round(f["similarity"], 1),
                [c["person"] for c in f["candidates"]],
            )
            for f in image["faces"]
        ]
        for image in images
    ]


def test_rerun_after_changes_matches_a_fresh_run(settings: Settings, tmp_path: Path) -> None:
    ft = Facetrail(settings)
    everyone = enroll_entries(KNN / "train")
    ft.enroll("band", [e for e in everyone if e.external_id not in ("rose_leslie", "biden")])
    photos = copy_tests(tmp_path)
    first = ft.identify("band", photos)
    ft.enroll("band", [e for e in everyone if e.external_id in ("rose_leslie", "biden")])
    fresh = ft.identify("band", photos)
    moved = tmp_path / "moved"
    moved.mkdir()
    for photo in photos:
        photo.rename(moved / photo.name)

    # Only new people: every face is rescored from its stored embedding, no photo is read.
    rerun = ft.job(ft.rerun(first["job_id"])["job_id"])
    assert rerun["status"] == "succeeded"
    assert faces_of(rerun) == faces_of(fresh)
    # Unchanged since: the faces are copied.
    again = ft.job(ft.rerun(rerun["job_id"])["job_id"])
    assert again["status"] == "succeeded" and faces_of(again) == faces_of(fresh)

    # An erasure removes the embeddings of faces that may be theirs: those photos are read.
    ft.delete_person("band", "biden")
    for photo in photos:
        (moved / photo.name).rename(photo)
    after = ft.identify("band", photos)
    assert faces_of(ft.job(ft.rerun(first["job_id"])["job_id"])) == faces_of(after)


def test_rerun_without_changes_reports_none(settings: Settings) -> None:
    ft = Facetrail(settings)
    ft.enroll("band", KNN / "train")
    first = ft.identify("band", sorted((KNN / "test").iterdir()))
    assert ft.rerun(first["job_id"])["changes"] == []


def test_delete_person_erases_biometrics_and_keeps_a_tombstone(settings: Settings) -> None:
    ft = Facetrail(settings)
    ft.enroll("band", KNN / "train")
    before = ft.identify("band", [KNN / "test" / "kit_with_rose.jpg"])
    assert names(before)["kit_with_rose.jpg"] == {"kit_harington", "rose_leslie"}

    result = ft.delete_person("band", "rose_leslie")
    assert result["deleted"] == "rose_leslie" and result["faces_deleted"] == 2
    assert result["backend_faces"] == 2 and result["face_results"] == 2
    with session_scope(settings) as session:
        assert session.scalar(select(Person).where(Person.external_id == "rose_leslie")) is None
        assert session.scalar(select(func.count()).select_from(Face)) == 7
        assert session.scalar(select(func.count()).select_from(LocalFace)) == 7
        assert (
            session.scalar(
                select(func.count())
                .select_from(FaceResult)
                .where(FaceResult.person_external_id == "rose_leslie")
            )
            == 0
        )
    # The old report no longer names her, nor lists her among candidates; kit stays named.
    faces = ft.job(before["job_id"])["images"][0]["faces"]
    assert {f["person"] for f in faces} == {"kit_harington", None}
    assert all(c["person"] != "rose_leslie" for f in faces for c in f["candidates"])
    assert ft.rerun(before["job_id"])["changes"] == []
    tombstone = ft.audit_log("band")[1]  # then the re-run
    assert tombstone["action"] == "delete_person"
    assert tombstone["details"]["person_sha256"] == people.person_digest("band", "rose_leslie")
    # Earlier events keep what happened, not whom it happened to.
    enrolled = ft.audit_log("band")[-1]["details"]["people"]
    assert "rose_leslie" not in enrolled and "[erased]" in enrolled


def test_rename_and_merge_need_no_backend_change(settings: Settings) -> None:
    ft = Facetrail(settings)
    kit = sorted((KNN / "train" / "kit_harington").iterdir())
    ft.enroll(
        "band",
        [EnrollEntry(str(kit[0]), "kit_a"), EnrollEntry(str(kit[1]), "kit_b")]
        + [e for e in enroll_entries(KNN / "train") if e.external_id == "obama"],
    )
    ft.rename_person("band", "obama", new_external_id="barack", display_name="Barack Obama")
    merged = ft.merge_people("band", "kit_b", "kit_a")
    assert merged["faces_moved"] == 1
    report = ft.identify("band", [KNN / "test" / "obama1.jpg", KNN / "test" / "johnsnow_test1.jpg"])
    assert names(report) == {"obama1.jpg": {"barack"}, "johnsnow_test1.jpg": {"kit_a"}}
    with session_scope(settings) as session:
        kit_a = session.scalars(select(Person).where(Person.external_id == "kit_a")).one()
        assert len(kit_a.faces) == 2
    assert [e["action"] for e in ft.audit_log("band")][:2] == ["merge", "rename"]


def test_known_people_across_public_collections_analyse_the_photo_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facetrail.backends import backend_for, backend_options
    from facetrail.backends.local.backend import LocalBackend
    from facetrail.images import load_image
    from facetrail.services import catalog, known_people

    ft = Facetrail(settings)
    everyone = enroll_entries(KNN / "train")
    ft.enroll("presidents", [e for e in everyone if e.external_id in {"obama", "biden"}])
    ft.enroll("actors", [e for e in everyone if e.external_id not in {"obama", "biden"}])
    with session_scope(settings) as session:
        for name in ("presidents", "actors"):
            catalog.set_public_figures(session, settings, name, True)
    # The instance the collections' pinned options select, as known_people gets it.
    recognizer = backend_for(settings, "local", backend_options(settings, "local"))
    assert isinstance(recognizer, LocalBackend)
    detect = recognizer.pipeline.detect
    calls: list[int] = []

    def counted(rgb: object) -> object:
        calls.append(1)
        return detect(rgb)  # type: ignore[arg-type]

    monkeypatch.setattr(recognizer.pipeline, "detect", counted)
    photo = load_image(
        KNN / "test" / "obama_and_biden.jpg",
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
    )
    found = known_people.recognize(settings, photo)

    assert sorted(c["Id"] for c in found["CelebrityFaces"]) == ["biden", "obama"]
    assert len(calls) == 1  # two collections searched, one detection


def test_delete_person_deletes_their_backend_user(settings: Settings) -> None:
    from facetrail.backends import get_backend
    from facetrail.errors import UserNotFoundError

    ft = Facetrail(settings)
    ft.enroll("band", KNN / "train")
    backend = get_backend(settings)
    with session_scope(settings) as session:
        face_ids = list(
            session.scalars(select(Face.face_id).join(Person).where(Person.external_id == "biden"))
        )
    backend.create_user("band", "biden")
    backend.associate_faces("band", "biden", face_ids)
    assert "biden" in backend.list_users("band")

    ft.delete_person("band", "biden")
    assert "biden" not in backend.list_users("band")
    with pytest.raises(UserNotFoundError):
        backend.delete_user("band", "biden")
