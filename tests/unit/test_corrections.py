"""Corrections: "this face is not X", "this face is Y", honoured by identify and re-runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from facetrail.api import Facetrail
from facetrail.cli.main import main
from facetrail.db import session_scope
from facetrail.errors import NotFoundError
from facetrail.identification import Candidate, FaceRule, assign_scores
from facetrail.images.scan import enroll_entries
from facetrail.models import Correction, Face, Person
from facetrail.settings import Settings
from tests.conftest import KNN

TRAIN = KNN / "train"
TEST = KNN / "test"


def faces_in(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    image = next(i for i in report["images"] if Path(i["image"]).name == name)
    faces: list[dict[str, Any]] = image["faces"]
    return faces


def face_named(report: dict[str, Any], name: str, person: str) -> dict[str, Any]:
    return next(f for f in faces_in(report, name) if f["person"] == person)


def people_in(report: dict[str, Any], name: str) -> set[str | None]:
    return {f["person"] for f in faces_in(report, name)}


def test_rules_change_who_is_named_and_nothing_else() -> None:
    scores = [{"ann": 95.0, "bob": 90.0, "cat": 10.0}, {"dan": 85.0, "ann": 20.0}]
    plain = assign_scores(scores, 80)
    assert [a.external_id for a in plain] == ["ann", "dan"]
    assert assign_scores(scores, 80, [None, None]) == plain

    # Not ann: the first face goes to bob, and ann is no runner-up of it either.
    ruled = assign_scores(scores, 80, [FaceRule(not_people=frozenset({"ann"})), None])
    assert [a.external_id for a in ruled] == ["bob", "dan"]
    assert [c.external_id for c in ruled[0].candidates] == ["cat"]
    assert ruled[1] == plain[1]

    # Is cat, below the threshold: named cat with cat's own score.
    ruled = assign_scores(scores, 80, [FaceRule(is_person="cat"), None])
    assert ruled[0].external_id == "cat" and ruled[0].similarity == 10.0
    assert ruled[0].candidates == [Candidate("ann", 95.0), Candidate("bob", 90.0)]
    assert ruled[1] == plain[1]

    # Is ann on the second face: the first cannot be ann too.
    ruled = assign_scores(scores, 80, [None, FaceRule(is_person="ann")])
    assert [(a.external_id, a.similarity) for a in ruled] == [("bob", 90.0), ("ann", 20.0)]

    # Someone nobody scored (a new person): named, with no similarity.
    ruled = assign_scores(scores, 80, [FaceRule(is_person="eve"), None])
    assert (ruled[0].external_id, ruled[0].similarity) == ("eve", None)


@pytest.fixture
def band(settings: Settings) -> Facetrail:
    ft = Facetrail(settings.with_(actor="tester"))
    ft.enroll("band", TRAIN)
    return ft


def copied_tests(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "photos"
    shutil.copytree(TEST, folder)
    return sorted(folder.iterdir())


def test_not_x_holds_in_new_jobs_and_reruns_until_withdrawn(
    band: Facetrail, tmp_path: Path
) -> None:
    photos = copied_tests(tmp_path)
    first = band.identify("band", photos)
    kit = face_named(first, "kit_with_rose.jpg", "kit_harington")

    done = band.correct_not("band", kit["face_result_id"], "kit_harington")
    assert (done["kind"], done["person"], done["results_changed"]) == ("not", "kit_harington", 1)
    # The result itself no longer names them, nor lists them as a runner-up.
    now = faces_in(band.job(first["job_id"]), "kit_with_rose.jpg")
    fixed = next(f for f in now if f["face_result_id"] == kit["face_result_id"])
    assert fixed["person"] is None
    assert all(c["person"] != "kit_harington" for c in fixed["candidates"])
    # Saying it again records nothing new.
    assert band.correct_not("band", kit["face_result_id"], "kit_harington")["already"]

    # The photos are gone: the re-run works from stored embeddings, and still obeys.
    for photo in photos:
        photo.unlink()
    rerun = band.rerun(first["job_id"])
    assert rerun["changes"] == []  # the corrected result already said so
    assert people_in(band.job(rerun["job_id"]), "kit_with_rose.jpg") == {None, "rose_leslie"}
    # A new job on the same photo obeys too, and other photos of kit are untouched.
    fresh = band.identify("band", [TEST / "kit_with_rose.jpg", TEST / "johnsnow_test1.jpg"])
    assert people_in(fresh, "kit_with_rose.jpg") == {None, "rose_leslie"}
    assert people_in(fresh, "johnsnow_test1.jpg") == {"kit_harington"}

    band.withdraw_correction("band", done["correction_id"])
    assert band.list_corrections("band") == []
    (withdrawn,) = band.list_corrections("band", withdrawn=True)
    assert withdrawn["withdrawn_at"] is not None
    again = band.rerun(first["job_id"])
    (change,) = again["changes"]
    assert (change["change"], change["after"]) == ("named", "kit_harington")
    actions = [e["action"] for e in band.audit_log("band", limit=4)]
    assert actions == ["rerun", "withdraw_correction", "rerun", "correct_not"]


def test_is_y_moves_the_name_enrolls_the_face_and_survives_a_rerun(settings: Settings) -> None:
    ft = Facetrail(settings.with_(actor="tester"))
    ft.enroll("band", [e for e in enroll_entries(TRAIN) if e.external_id != "biden"])
    first = ft.identify("band", [TEST / "obama_and_biden.jpg"])
    unknown = [f for f in faces_in(first, "obama_and_biden.jpg") if f["person"] is None]
    assert len(unknown) == 2
    # Which of the two unknown faces is biden: the larger one.
    biden = max(unknown, key=lambda f: f["box"]["width"] * f["box"]["height"])

    done = ft.correct_is("band", biden["face_result_id"], "biden")
    assert (done["kind"], done["person"], done["results_changed"]) == ("is", "biden", 1)
    assert done["enrolled"] is True and done["enroll_job_id"] is not None
    assert face_named(ft.job(first["job_id"]), "obama_and_biden.jpg", "biden")["similarity"] is None
    with session_scope(settings) as session:
        person = session.scalar(select(Person).where(Person.external_id == "biden"))
        assert person is not None
        assert session.scalar(select(func.count()).where(Face.person_id == person.id)) == 1

    # Enrolled from that one face, biden is now named in a photo no correction touches...
    other = ft.identify("band", [TRAIN / "biden" / "biden2.jpg"])
    assert people_in(other, "biden2.jpg") == {"biden"}
    # ...and the corrected face stays his through a re-run.
    rerun = ft.rerun(first["job_id"])
    named = face_named(ft.job(rerun["job_id"]), "obama_and_biden.jpg", "biden")
    assert named["box"] == biden["box"]
    assert people_in(ft.job(rerun["job_id"]), "obama_and_biden.jpg") == {"obama", "biden", None}
    actions = [e["action"] for e in ft.audit_log("band", limit=3)]
    assert actions[1:] == ["correct_is", "enroll"]

    # Withdrawn: the face it enrolled leaves biden again.
    gone = ft.withdraw_correction("band", done["correction_id"])
    assert gone["faces_removed"] == 1
    with session_scope(settings) as session:
        assert session.scalar(select(func.count()).where(Face.person_id == person.id)) == 0


def rose_faces(ft: Facetrail) -> int:
    with session_scope(ft.settings) as session:
        count = session.scalar(
            select(func.count())
            .select_from(Face)
            .join(Person, Face.person_id == Person.id)
            .where(Person.external_id == "rose_leslie")
        )
    return int(count or 0)


def test_a_wrong_name_moves_to_the_right_person(band: Facetrail) -> None:
    first = band.identify("band", [TEST / "kit_with_rose.jpg"])
    kit = face_named(first, "kit_with_rose.jpg", "kit_harington")
    rose = face_named(first, "kit_with_rose.jpg", "rose_leslie")
    enrolled = rose_faces(band)
    # Say kit's face is rose's: rose's own face loses the name, as one person appears once in
    # a photo, and the face is enrolled as rose.
    wrong = band.correct_is("band", kit["face_result_id"], "rose_leslie")
    assert wrong["enrolled"] and rose_faces(band) == enrolled + 1
    now = faces_in(band.job(first["job_id"]), "kit_with_rose.jpg")
    by_id = {f["face_result_id"]: f["person"] for f in now}
    assert by_id == {kit["face_result_id"]: "rose_leslie", rose["face_result_id"]: None}
    rerun = band.job(band.rerun(first["job_id"])["job_id"])
    after = {tuple(f["box"].values()): f["person"] for f in faces_in(rerun, "kit_with_rose.jpg")}
    assert after[tuple(kit["box"].values())] == "rose_leslie"
    # Rose's own face may go to nobody else but kit, whom nothing rules out.
    assert after[tuple(rose["box"].values())] in (None, "kit_harington")

    # The newer word stands: "is kit" withdraws "is rose" on that face, and the face that
    # correction enrolled leaves rose.
    right = band.correct_is("band", kit["face_result_id"], "kit_harington", enroll=False)
    assert "enrolled" not in right and right["withdrew"] == [wrong["correction_id"]]
    assert rose_faces(band) == enrolled
    (active,) = band.list_corrections("band")
    assert (active["kind"], active["person"]) == ("is", "kit_harington")
    event = band.audit_log("band", limit=1)[0]
    assert event["action"] == "correct_is" and event["details"]["faces_removed"] == 1


def test_is_y_without_the_photo_records_but_does_not_enroll(
    band: Facetrail, tmp_path: Path
) -> None:
    photos = copied_tests(tmp_path)
    first = band.identify("band", photos)
    face = face_named(first, "obama1.jpg", "obama")
    for photo in photos:
        photo.unlink()
    done = band.correct_is("band", face["face_result_id"], "barack")
    assert done["enrolled"] is False and "could not be read" in done["enroll_error"]
    assert done["enroll_job_id"] is None
    assert face_named(band.job(first["job_id"]), "obama1.jpg", "barack")


def test_merge_carries_corrections_and_erasure_removes_them(band: Facetrail) -> None:
    first = band.identify("band", [TEST / "kit_with_rose.jpg"])
    rose = face_named(first, "kit_with_rose.jpg", "rose_leslie")
    band.correct_not("band", rose["face_result_id"], "kit_harington")
    band.merge_people("band", "kit_harington", "alex_lacamoire")
    (moved,) = band.list_corrections("band")
    assert moved["person"] == "alex_lacamoire"

    erased = band.delete_person("band", "alex_lacamoire")
    assert erased["corrections"] == 1
    with session_scope(band.settings) as session:
        assert session.scalar(select(func.count()).select_from(Correction)) == 0
    # The audit events of the correction no longer name them.
    events = [e for e in band.audit_log("band") if e["action"] == "correct_not"]
    assert events and all("kit_harington" not in json.dumps(e["details"]) for e in events)


def test_corrections_name_faces_of_the_collection_only(band: Facetrail) -> None:
    band.identify("band", [TEST / "obama1.jpg"])
    band.enroll("other", [(TRAIN / "obama" / "obama.jpg", "obama")])
    job = band.identify("other", [TEST / "obama1.jpg"])
    (face,) = faces_in(job, "obama1.jpg")
    with pytest.raises(NotFoundError, match="no face result"):
        band.correct_not("band", face["face_result_id"], "obama")
    with pytest.raises(NotFoundError, match="no person 'nobody'"):
        band.correct_not("other", face["face_result_id"], "nobody")
    with pytest.raises(NotFoundError, match="no correction 99"):
        band.withdraw_correction("band", 99)


def test_correct_on_the_command_line(cli: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["enroll", str(TRAIN), "-c", "band"]) == 0
    capsys.readouterr()
    assert main(["identify", str(TEST / "obama1.jpg"), "-c", "band", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    face = report["images"][0]["faces"][0]["face_result_id"]
    assert main(["correct", "not", str(face), "obama", "-c", "band"]) == 0
    assert capsys.readouterr().out.startswith(f"correction 1: face {face} is not obama;")
    assert main(["jobs", str(report["job_id"])]) == 0
    assert f"unknown #{face}" in capsys.readouterr().out
    assert main(["correct", "list", "-c", "band", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["kind"], listed["person"]) == ("not", "obama")
    assert main(["correct", "withdraw", "1", "-c", "band"]) == 0
    assert "withdrawn" in capsys.readouterr().out
