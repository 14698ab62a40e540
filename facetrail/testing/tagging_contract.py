"""The tagging contract every backend honours: labels, text and moderation in facetrail's
Rekognition shapes, and the tagging operations run on it.

Subclass :class:`TaggingContract` in a test module (a class named ``Test...``) and give it two
fixtures: ``backend`` (a Backend) and ``tagging_photos`` (a :class:`TaggingPhotos`). The page of
text is drawn by the contract itself, in the font that ships inside Pillow.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from facetrail.backends.base import Backend, BoundingBox
from facetrail.errors import InvalidParameterError
from facetrail.images import LoadedImage, decode_image
from facetrail.settings import Settings
from facetrail.tagging.operations import OPERATIONS, check_ops, run_ops
from facetrail.testing.backend_contract import load
from facetrail.testing.textmetrics import char_accuracy

PAGE_LINES = ("Harbour notes for the spring crossing", "The ferry leaves the north pier at seven")
EPSILON = 1e-6


@dataclass(frozen=True)
class TaggingPhotos:
    labelled: Path  # a photo whose subject is labelled at the default confidence floor
    plain: Path  # an ordinary photo: nothing to moderate


def text_page() -> LoadedImage:
    """Two lines of black text on white, as a decoded PNG."""
    font = ImageFont.load_default(size=28)
    page = Image.new("RGB", (720, 200), "white")
    draw = ImageDraw.Draw(page)
    for i, line in enumerate(PAGE_LINES):
        draw.text((50, 50 + 60 * i), line, fill="black", font=font)
    buffer = io.BytesIO()
    page.save(buffer, "PNG")
    return decode_image(buffer.getvalue(), source="page.png", max_bytes=1 << 24, max_pixels=1 << 24)


def check_box(box: BoundingBox) -> None:
    """A box as ratios of the image's size, inside the image."""
    assert 0 <= box.left <= 1 and 0 <= box.top <= 1
    assert 0 <= box.width <= 1 and 0 <= box.height <= 1
    assert box.left + box.width <= 1 + EPSILON and box.top + box.height <= 1 + EPSILON


class TaggingContract:
    """The tagging operations' contract; see the module docstring for the fixtures to give."""

    @pytest.fixture
    def backend(self) -> Backend:
        raise NotImplementedError("a TaggingContract subclass gives a `backend` fixture")

    @pytest.fixture
    def tagging_photos(self) -> TaggingPhotos:
        raise NotImplementedError("a TaggingContract subclass gives a `tagging_photos` fixture")

    def test_labels_shape(self, backend: Backend, tagging_photos: TaggingPhotos) -> None:
        labels = backend.detect_labels(load(tagging_photos.labelled))
        assert labels, "the labelled photo got no label"
        confidences = [label.confidence for label in labels]
        assert confidences == sorted(confidences, reverse=True)  # best first
        names = {label.name for label in labels}
        assert any(label.instances for label in labels)  # objects come with their boxes
        for label in labels:
            assert label.name and 0 <= label.confidence <= 100
            for instance in label.instances:
                check_box(instance.box)
                assert 0 <= instance.confidence <= 100
            # Parents are reported as labels too.
            assert set(label.parents) <= names
            entry = label.to_rekognition()
            assert set(entry) == {"Name", "Confidence", "Instances", "Parents", "Aliases"} | {
                "Categories"
            }

    def test_labels_floor_and_count(self, backend: Backend, tagging_photos: TaggingPhotos) -> None:
        image = load(tagging_photos.labelled)
        assert all(lb.confidence >= 50 for lb in backend.detect_labels(image, min_confidence=50))
        assert len(backend.detect_labels(image, max_labels=2)) <= 2
        with pytest.raises(InvalidParameterError):
            backend.detect_labels(image, min_confidence=101)
        with pytest.raises(InvalidParameterError):
            backend.detect_labels(image, max_labels=0)

    def test_text_shape(self, backend: Backend) -> None:
        found = backend.detect_text(text_page())
        lines = [d for d in found if d.type == "LINE"]
        words = [d for d in found if d.type == "WORD"]
        assert len(lines) == len(PAGE_LINES) and words
        assert found[: len(lines)] == lines  # LINEs first, numbered 0..n-1
        assert [d.id for d in lines] == list(range(len(lines)))
        assert {d.parent_id for d in words} <= {d.id for d in lines}
        assert all(d.parent_id is None for d in lines)
        assert char_accuracy(" ".join(d.text for d in lines), " ".join(PAGE_LINES)) >= 0.9
        for detection in found:
            check_box(detection.box)
            assert 0 <= detection.confidence <= 100
            assert len(detection.polygon) == 4
            assert all(0 <= p.x <= 1 and 0 <= p.y <= 1 for p in detection.polygon)
        with pytest.raises(InvalidParameterError):
            backend.detect_text(text_page(), min_confidence=-1)

    def test_moderation_shape(self, backend: Backend, tagging_photos: TaggingPhotos) -> None:
        image = load(tagging_photos.plain)
        assert backend.detect_moderation_labels(image) == []  # an ordinary photo
        for label in backend.detect_moderation_labels(image, min_confidence=0):
            assert label.name and 0 <= label.confidence <= 100
            assert set(label.to_rekognition()) == {
                "Name",
                "ParentName",
                "Confidence",
                "TaxonomyLevel",
            }
        with pytest.raises(InvalidParameterError):
            backend.detect_moderation_labels(image, min_confidence=101)

    def test_operations_run_on_the_backend(
        self, backend: Backend, tagging_photos: TaggingPhotos
    ) -> None:
        ops = [op for op in OPERATIONS if op != "people"]  # people needs a database of people
        settings: Settings = backend.settings
        results = run_ops(settings, backend, load(tagging_photos.labelled), ops)
        assert list(results) == ops
        assert all(isinstance(entries, list) for entries in results.values())
        assert results["labels"] and all("Name" in entry for entry in results["labels"])
        json.dumps(results)  # JSON-ready, as tag jobs store them
        with pytest.raises(InvalidParameterError):
            check_ops(["labels", "colours"])
        with pytest.raises(InvalidParameterError):
            run_ops(settings, backend, load(tagging_photos.labelled), [])
