"""Text detection (RapidOCR, PP-OCRv6) on the scanned pages and word crops in ../shared/data/ocr."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("rapidocr", reason="needs the tagging extra")

from facetrail.images import load_image
from facetrail.settings import Settings
from facetrail.tagging import Tagger
from facetrail.tagging.text import TextDetection, detect_text_response
from facetrail.tagging.textmetrics import char_accuracy, normalise

OCR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ocr"
PAGES = OCR / "tesseract"
WORDS = OCR / "scene_words"


def _read(settings: Settings, path: Path, **kwargs: object) -> list[TextDetection]:
    image = load_image(path, max_bytes=settings.max_image_bytes, max_pixels=10**8)
    return Tagger(settings).text(image, **kwargs)  # type: ignore[arg-type]


def _lines(found: list[TextDetection]) -> list[str]:
    return [d.text for d in found if d.type == "LINE"]


@pytest.fixture(scope="module")
def phototest(models_dir: Path) -> list[TextDetection]:
    return _read(Settings(models_dir=models_dir), PAGES / "phototest.tif")


def test_scanned_page_text_is_read(phototest: list[TextDetection]) -> None:
    truth = normalise((PAGES / "phototest.txt").read_text())
    read = normalise(" ".join(_lines(phototest)))
    assert char_accuracy(read, truth) >= 0.98, read
    assert "The quick brown dog jumped over the" in _lines(phototest)


def test_multilingual_page(settings: Settings) -> None:
    truth = normalise((PAGES / "eurotext.txt").read_text(encoding="utf-8"))
    read = normalise(" ".join(_lines(_read(settings, PAGES / "eurotext.tif"))))
    assert char_accuracy(read, truth) >= 0.95, read
    assert "über den faulen Hund" in read


def test_lines_then_words_with_parents_and_geometry(phototest: list[TextDetection]) -> None:
    lines = [d for d in phototest if d.type == "LINE"]
    words = [d for d in phototest if d.type == "WORD"]
    assert [d.id for d in lines] == list(range(len(lines)))
    assert [d.id for d in words] == list(range(len(lines), len(phototest)))
    for line in lines:
        own = [w.text for w in words if w.parent_id == line.id]
        assert " ".join(own) == " ".join(line.text.split())
    for entry in phototest:
        assert 0 <= entry.confidence <= 100
        assert len(entry.polygon) == 4
        assert all(0 <= p.x <= 1 and 0 <= p.y <= 1 for p in entry.polygon)
        box = entry.box
        assert box.left >= 0 and box.top >= 0 and box.left + box.width <= 1 + 1e-9
    # Words sit inside their line's box (a little slack for rounding).
    by_id = {d.id: d for d in lines}
    for word in words:
        line = by_id[word.parent_id or 0].box
        assert line.left - 0.01 <= word.box.left and word.box.top >= line.top - 0.01


def test_rekognition_shape(phototest: list[TextDetection]) -> None:
    body = detect_text_response(phototest)
    line, word = body["TextDetections"][0], body["TextDetections"][-1]
    assert set(line) == {"DetectedText", "Type", "Id", "Confidence", "Geometry"}
    assert word["ParentId"] < len([d for d in phototest if d.type == "LINE"])
    assert set(line["Geometry"]) == {"BoundingBox", "Polygon"}
    assert set(line["Geometry"]["Polygon"][0]) == {"X", "Y"}


def test_blank_image_has_no_text(settings: Settings) -> None:
    assert Tagger(settings).text(Image.new("RGB", (320, 200), "white")) == []


def test_single_line_mode_reads_word_crops(settings: Settings) -> None:
    with (WORDS / "labels.csv").open() as fh:
        rows = {r["file"]: r["text_visible_in_image"] for r in csv.DictReader(fh)}
    for name in ("demo_1.png", "demo_7.png"):
        found = _read(settings, WORDS / name, single_line=True)
        assert [d.type for d in found] == ["LINE", "WORD"]
        assert found[0].text.lower() == rows[name].lower()
        assert found[0].box.width == pytest.approx(1.0)
