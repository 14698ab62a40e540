"""The command line, run in-process against the embedded default."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from facetrail.cli.main import main
from facetrail.settings import Settings
from tests.conftest import DATA, KNN

IMAGES = DATA / "face_recognition" / "tests" / "test_images"


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    capsys.readouterr()
    main(list(argv))
    return json.loads(capsys.readouterr().out)


def test_enroll_identify_annotate_and_jobs(
    cli: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["enroll", str(KNN / "train"), "--collection", "band"]) == 0
    photo = KNN / "test" / "kit_with_rose.jpg"
    out = tmp_path / "annotated.jpg"
    report = run_json(
        capsys, "identify", str(photo), "--collection", "band", "--json", "--annotate", str(out)
    )
    assert isinstance(report, dict)
    assert set(report) >= {"job_id", "images"}
    (image,) = report["images"]
    assert image["image"] == str(photo)
    assert {f["person"] for f in image["faces"]} == {"kit_harington", "rose_leslie"}
    for face in image["faces"]:
        assert set(face["box"]) == {"left", "top", "width", "height"}
        assert 0 <= face["similarity"] <= 100
    with Image.open(out) as drawn, Image.open(photo) as original:
        assert drawn.size == original.size
        assert drawn.format == "JPEG"

    listing = run_json(capsys, "jobs", "--json")
    assert isinstance(listing, list)
    assert [j["kind"] for j in listing] == ["identify", "enroll"]
    again = run_json(capsys, "jobs", str(report["job_id"]), "--json")
    assert isinstance(again, dict) and again["images"] == report["images"]

    people = run_json(capsys, "collections", "people", "band", "--json")
    assert isinstance(people, list) and len(people) == 5


def test_detect_and_compare(cli: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    detected = run_json(capsys, "detect", str(IMAGES / "biden.jpg"), "--json")
    assert isinstance(detected, list)
    (face,) = detected[0]["faces"]
    assert len(face["landmarks"]) == 5
    assert set(face["pose"]) == {"roll", "yaw", "pitch"}
    same = run_json(
        capsys, "compare", str(IMAGES / "obama.jpg"), str(IMAGES / "obama2.jpg"), "--json"
    )
    assert isinstance(same, dict) and same["matches"][0]["similarity"] >= 80
    assert main(["compare", str(IMAGES / "obama.jpg"), str(IMAGES / "biden.jpg")]) == 1


def test_errors_are_one_clear_line(cli: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["identify", str(IMAGES / "obama.jpg"), "--collection", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "facetrail: error: collection 'nope' does not exist"


def test_images_from_stdin(
    cli: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def stdin(path: Path) -> None:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(path.read_bytes())))

    stdin(IMAGES / "obama.jpg")
    assert main(["enroll", "-", "-c", "band"]) == 2
    assert "needs --person" in capsys.readouterr().err
    stdin(IMAGES / "obama.jpg")
    enrolled = run_json(capsys, "enroll", "-", "--person", "obama", "-c", "band", "--json")
    assert isinstance(enrolled, dict) and enrolled["status"] == "succeeded"
    (item,) = enrolled["images"]
    assert item["image"].startswith("upload://") and item["person"] == "obama"
    stdin(IMAGES / "obama2.jpg")
    report = run_json(capsys, "identify", "-", str(IMAGES / "biden.jpg"), "-c", "band", "--json")
    assert isinstance(report, dict)
    first, second = report["images"]
    assert first["image"].startswith("upload://")
    assert [f["person"] for f in first["faces"]] == ["obama"]
    assert second["image"] == str(IMAGES / "biden.jpg")
    assert main(["identify", "-", "-", "-c", "band"]) == 2
    assert "only once" in capsys.readouterr().err
