"""Text detection (RapidOCR, PP-OCRv6) on the scanned pages and word crops in ../shared/data/ocr."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

pytest.importorskip("rapidocr", reason="needs the tagging extra")

from facetrail.images import load_image
from facetrail.inference.text import TextReader, _unturn
from facetrail.modelfiles import model_path
from facetrail.settings import Settings
from facetrail.tagging.text import MODEL_NAMES, Point, TextDetection, detect_text_response
from facetrail.testing.textmetrics import char_accuracy, normalise

OCR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ocr"
PAGES = OCR / "tesseract"
WORDS = OCR / "scene_words"


def _reader(settings: Settings) -> TextReader:
    """The local backend's text reader (the process's shared instance)."""
    files = [model_path(settings, name) for name in MODEL_NAMES]
    return TextReader.shared(files, threads=settings.threads)


def _read(settings: Settings, path: Path, **kwargs: object) -> list[TextDetection]:
    image = load_image(path, max_bytes=settings.max_image_bytes, max_pixels=10**8)
    return _reader(settings).predict(image.pixels, **kwargs)


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
        line_box = by_id[word.parent_id or 0].box
        assert line_box.left - 0.01 <= word.box.left and word.box.top >= line_box.top - 0.01


def test_rekognition_shape(phototest: list[TextDetection]) -> None:
    body = detect_text_response(phototest)
    line, word = body["TextDetections"][0], body["TextDetections"][-1]
    assert set(line) == {"DetectedText", "Type", "Id", "Confidence", "Geometry"}
    assert word["ParentId"] < len([d for d in phototest if d.type == "LINE"])
    assert set(line["Geometry"]) == {"BoundingBox", "Polygon"}
    assert set(line["Geometry"]["Polygon"][0]) == {"X", "Y"}


def test_blank_image_has_no_text(settings: Settings) -> None:
    assert _reader(settings).predict(Image.new("RGB", (320, 200), "white")) == []


def test_single_line_mode_reads_word_crops(settings: Settings) -> None:
    with (WORDS / "labels.csv").open() as fh:
        rows = {r["file"]: r["text_visible_in_image"] for r in csv.DictReader(fh)}
    for name in ("demo_1.png", "demo_7.png"):
        found = _read(settings, WORDS / name, single_line=True)
        assert [d.type for d in found] == ["LINE", "WORD"]
        assert found[0].text.lower() == rows[name].lower()
        assert found[0].box.width == pytest.approx(1.0)


# -- pages turned by 90, 180 and 270 degrees ------------------------------------------------------

NOTICE = (
    "Harbour notes for the spring crossing",
    "The ferry leaves the north pier at seven",
    "and returns before the evening tide turns.",
    "Tickets cost twelve euros for adults and",
    "five for children under ten years of age.",
    "Please keep your luggage within sight.",
)
# How the page was turned before it was sent, and where an upright point (x, y), as ratios,
# lands on the turned image.
TURNED: dict[str, tuple[Image.Transpose, Callable[[float, float], tuple[float, float]]]] = {
    "left": (Image.Transpose.ROTATE_90, lambda x, y: (y, 1 - x)),
    "upside down": (Image.Transpose.ROTATE_180, lambda x, y: (1 - x, 1 - y)),
    "right": (Image.Transpose.ROTATE_270, lambda x, y: (1 - y, x)),
}


def _rendered_page() -> Image.Image:
    """A page of text in the font that ships inside Pillow (the one --annotate uses)."""
    font = ImageFont.load_default(size=28)
    image = Image.new("RGB", (720, 460), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(NOTICE):
        draw.text((50, 50 + 60 * i), line, fill="black", font=font)
    return image


class _CountingEngine:
    """RapidOCR with a count of full passes (detection and recognition) and of probes
    (detection alone, on a smaller copy)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.passes = 0
        self.probes: list[tuple[int, int]] = []

    def __call__(self, image: Any, **kwargs: Any) -> Any:
        if kwargs.get("use_det") and kwargs.get("use_rec"):
            self.passes += 1
        elif kwargs.get("use_det"):
            self.probes.append(image.shape[:2])
        return self.engine(image, **kwargs)


@pytest.fixture(scope="module")
def notice(models_dir: Path) -> dict[str, tuple[Image.Image, list[TextDetection]]]:
    """The rendered page as sent upright and turned each way, with what was read on it."""
    reader = _reader(Settings(models_dir=models_dir))
    upright = _rendered_page()
    pages = {"upright": upright}
    pages |= {name: upright.transpose(turn) for name, (turn, _) in TURNED.items()}
    return {name: (image, reader.predict(image)) for name, image in pages.items()}


def test_turned_pages_read_the_same_lines_in_the_same_order(
    notice: dict[str, tuple[Image.Image, list[TextDetection]]],
) -> None:
    upright = _lines(notice["upright"][1])
    assert char_accuracy(" ".join(upright), " ".join(NOTICE)) >= 0.98, upright
    for name in TURNED:
        assert _lines(notice[name][1]) == upright, name


def test_turned_geometry_is_the_upright_geometry_turned(
    notice: dict[str, tuple[Image.Image, list[TextDetection]]],
) -> None:
    upright = notice["upright"][1]
    for name, (_, move) in TURNED.items():
        found = notice[name][1]
        assert [(d.id, d.type, d.text, d.parent_id, d.confidence) for d in found] == [
            (d.id, d.type, d.text, d.parent_id, d.confidence) for d in upright
        ]
        for seen, straight in zip(found, upright, strict=True):
            # Corners keep the text's own order: the first is the text's top-left.
            expected = [move(p.x, p.y) for p in straight.polygon]
            corners = [c for p in seen.polygon for c in (p.x, p.y)]
            assert corners == pytest.approx([c for xy in expected for c in xy], abs=1e-9)
            xs, ys = [x for x, _ in expected], [y for _, y in expected]
            box = seen.box
            assert (box.left, box.top) == pytest.approx((min(xs), min(ys)), abs=1e-9)
            assert (box.width, box.height) == pytest.approx(
                (max(xs) - min(xs), max(ys) - min(ys)), abs=1e-9
            )


def test_turned_boxes_cover_the_ink_of_the_image_as_sent(
    notice: dict[str, tuple[Image.Image, list[TextDetection]]],
) -> None:
    for name in TURNED:
        image, found = notice[name]
        ink = np.asarray(image.convert("L")) < 128
        covered = np.zeros_like(ink)
        for entry in found:
            left, top, right, bottom = _pixels(entry.polygon, image.width, image.height)
            assert ink[top:bottom, left:right].any(), (name, entry.text)
            if entry.type == "LINE":
                covered[top:bottom, left:right] = True
        assert not (ink & ~covered).any(), name


def _pixels(polygon: tuple[Point, ...], width: int, height: int) -> tuple[int, int, int, int]:
    """The polygon's box in pixels, 2 px wider each way (antialiased edges)."""
    xs, ys = [p.x * width for p in polygon], [p.y * height for p in polygon]
    return (
        max(0, int(min(xs)) - 2),
        max(0, int(min(ys)) - 2),
        int(max(xs)) + 3,
        int(max(ys)) + 3,
    )


def test_upright_page_is_read_in_one_pass_as_before(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = _reader(settings)
    reader.load()
    counting = _CountingEngine(reader._engine)
    monkeypatch.setattr(reader, "_engine", counting)
    page = _rendered_page()
    as_sent = reader.predict(page, orientation=False)
    assert counting.passes == 1
    assert reader.predict(page) == as_sent
    assert counting.passes == 2  # one more for the read with orientation: not two
    reader.predict(page.transpose(Image.Transpose.ROTATE_180))
    assert counting.passes == 4


def test_a_photo_without_text_ends_after_the_small_probe(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = _reader(settings)
    reader.load()
    counting = _CountingEngine(reader._engine)
    monkeypatch.setattr(reader, "_engine", counting)
    ramp = np.linspace(40, 220, 1200, dtype=np.float32)
    photo = Image.fromarray(np.tile(ramp, (900, 1)).astype(np.uint8)).convert("RGB")
    assert max(photo.size) > reader.probe_side  # type: ignore[operator]
    assert reader.predict(photo) == []
    assert counting.passes == 0
    ((height, width),) = counting.probes
    assert max(height, width) == reader.probe_side


def test_a_photo_no_larger_than_the_probe_gets_the_full_pass_alone(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The full pass would detect at the photo's own size, as the probe: nothing to save."""
    reader = _reader(settings)
    reader.load()
    counting = _CountingEngine(reader._engine)
    monkeypatch.setattr(reader, "_engine", counting)
    ramp = np.linspace(40, 220, 600, dtype=np.float32)
    photo = Image.fromarray(np.tile(ramp, (400, 1)).astype(np.uint8)).convert("RGB")
    assert max(photo.size) <= reader.probe_side  # type: ignore[operator]
    assert reader.predict(photo) == []
    assert (counting.probes, counting.passes) == ([], 1)
    words = load_image(WORDS / "demo_5.png", max_bytes=10**7, max_pixels=10**8).pixels
    assert max(words.size) <= reader.probe_side  # type: ignore[operator]
    assert "TOAST" in _lines(reader.predict(words))
    assert (counting.probes, counting.passes) == ([], 2)


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_points_on_the_upright_page_map_back_to_the_same_pixels(turns: int) -> None:
    sent = np.zeros((30, 50), dtype=bool)
    sent[4:9, 20:41] = True  # a 21x5 "word"
    upright = np.rot90(sent, turns)  # what the reader reads: the page turned counter-clockwise
    rows, cols = np.nonzero(upright)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    quad = [[left, top], [right, top], [right, bottom], [left, bottom]]
    back = np.asarray(_unturn(quad, turns, width=50, height=30))
    assert (back[:, 0].min(), back[:, 0].max()) == (20, 41)
    assert (back[:, 1].min(), back[:, 1].max()) == (4, 9)


def test_detection_input_is_rapidocrs_own_bit_for_bit(settings: Settings) -> None:
    from rapidocr.ch_ppocr_det.utils import DetPreProcess

    reader = _reader(settings)
    reader.load()
    detector = reader._engine.text_det
    ours = detector.get_preprocess()
    assert not isinstance(ours, DetPreProcess)  # the looked-up input is the one in use
    theirs = DetPreProcess(
        detector.limit_side_len, detector.limit_type, detector.mean, detector.std
    )
    photo = load_image(PAGES / "phototest.tif", max_bytes=1 << 26, max_pixels=10**8).pixels
    noise = np.random.default_rng(2).integers(0, 256, (700, 1500, 3), dtype=np.uint8)
    for image in (np.ascontiguousarray(np.asarray(photo.convert("RGB"))[:, :, ::-1]), noise):
        expected = theirs(image)
        got = ours(image)
        assert got is not None and expected is not None
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
