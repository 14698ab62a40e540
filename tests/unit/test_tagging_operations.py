"""The one list of tagging operations: run on a backend, checked, tabulated; failures as rows."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason="needs the tagging extra")
pytest.importorskip("pandas", reason="needs the tagging extra")

from facetrail.backends import get_backend
from facetrail.errors import FacetrailError, InvalidParameterError
from facetrail.images import load_image, open_image
from facetrail.settings import Settings
from facetrail.tagging.operations import OPERATIONS, check_ops, run_ops
from facetrail.tagging.tables import image_result, long_table, wide_table

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
EAGLE = DATA / "dlib" / "dlib" / "test" / "ffmpeg_data" / "eagle.jpg"
PAGE = DATA / "ocr" / "tesseract" / "phototest.tif"


def test_the_operations_in_their_order() -> None:
    assert tuple(OPERATIONS) == ("labels", "text", "people", "moderation")
    assert check_ops(["text", "labels", "text"]) == ("text", "labels")
    with pytest.raises(InvalidParameterError, match="colours"):
        check_ops(["labels", "colours"])
    with pytest.raises(InvalidParameterError, match="none given"):
        check_ops([])


def test_run_ops_returns_rekognition_shaped_entries(settings: Settings) -> None:
    image = load_image(EAGLE, max_bytes=10**8, max_pixels=10**8)
    out = run_ops(settings, get_backend(settings, "local"), image, ["labels", "moderation"])
    assert list(out) == ["labels", "moderation"]
    assert out["labels"][0]["Name"] == "Bird" and out["moderation"] == []


def test_people_runs_the_known_people_recognition(settings: Settings) -> None:
    from facetrail.migrate import ensure_schema

    ensure_schema(settings)
    image = load_image(
        DATA / "face_recognition" / "examples" / "two_people.jpg", max_bytes=10**8, max_pixels=10**8
    )
    out = run_ops(settings, get_backend(settings, "local"), image, ["people"])
    # No public-figure collection yet: both faces are found, neither is named.
    assert out["people"]["CelebrityFaces"] == []
    assert len(out["people"]["UnrecognizedFaces"]) == 2


def test_a_batch_with_bad_sources_gives_one_row_each(settings: Settings, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(EAGLE.read_bytes()[:2000])  # a truncated JPEG
    sources = [
        str(EAGLE),
        str(PAGE),
        str(broken),
        str(tmp_path / "missing.jpg"),
        "http://127.0.0.1:9/internal.jpg",
        "ftp://example.com/a.jpg",
    ]
    backend = get_backend(settings, "local")
    results = []
    for source in sources:
        try:
            found = run_ops(settings, backend, open_image(settings, source), ["labels", "text"])
        except FacetrailError as exc:
            results.append(image_result(source, error=exc))
        else:
            results.append(image_result(source, results=found))
    assert [r["status"] for r in results] == ["succeeded"] * 2 + ["failed"] * 4
    assert [r["error"]["code"] for r in results[2:]] == [
        "invalid_image", "image_not_found", "url_refused", "url_refused",
    ]  # fmt: skip
    wide = wide_table(results)
    assert wide.label_1.iloc[0] == "Bird"
    assert "The quick brown dog jumped over the" in wide.text_all.iloc[1]
    long = long_table(results)
    assert (long.groupby("image").size()[[str(broken), sources[4]]] == 1).all()


def test_rekognition_entries_read_back_into_the_same_values() -> None:
    from facetrail.backends.base import BoundingBox
    from facetrail.tagging.labels import Instance, Label
    from facetrail.tagging.moderation import ModerationLabel
    from facetrail.tagging.text import Point, TextDetection

    box = BoundingBox(0.25, 0.5, 0.5, 0.25)
    label = Label("Dog", 69.8, (Instance(box, 41.7),), ("Mammal",), ("Animals and Pets",), ("Pup",))
    line = TextDetection(0, "LINE", "hi there", 98.5, box, (Point(0.25, 0.5),) * 4)
    word = TextDetection(1, "WORD", "hi", 97.0, box, (Point(0.25, 0.5),) * 4, parent_id=0)
    flag = ModerationLabel("Explicit", 87.1)
    assert Label.from_rekognition(label.to_rekognition()) == label
    assert TextDetection.from_rekognition(line.to_rekognition()) == line
    assert TextDetection.from_rekognition(word.to_rekognition()) == word
    assert ModerationLabel.from_rekognition(flag.to_rekognition()) == flag
    # The service's boxes may reach past the image's edges: they are clipped to it.
    wide = {"Name": "Car", "Confidence": 90.0, "Instances": [
        {"BoundingBox": {"Left": -0.1, "Top": 0.5, "Width": 0.5, "Height": 0.7}, "Confidence": 90.0}
    ]}  # fmt: skip
    clipped = Label.from_rekognition(wide).instances[0].box
    assert clipped.left == 0.0
    assert clipped.width == pytest.approx(0.4)
    assert clipped.top + clipped.height == pytest.approx(1.0)
