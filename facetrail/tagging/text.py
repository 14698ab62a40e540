"""DetectText's entries: LINE and WORD detections, and the response body they make.

Geometry is Rekognition's: a BoundingBox and a 4-point Polygon (top-left, top-right,
bottom-right, bottom-left), as ratios of the image's width and height. Ids number the LINEs
first, then the WORDs, whose ParentId is their line's Id. The model that reads text is
``facetrail.inference.text``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from facetrail.backends.base import BoundingBox
from facetrail.modelfiles import MODELS
from facetrail.shapes import box_from_json, box_json

MODEL_NAMES = ("ocr_det", "ocr_rec", "ocr_cls")
MODEL_VERSION = "rapidocr-3.10.0/PP-OCRv6-small@" + "-".join(
    MODELS[n].sha256[:8] for n in MODEL_NAMES[:2]
)


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True)
class TextDetection:
    """One DetectText entry: a LINE, or a WORD whose ``parent_id`` is its line's ``id``."""

    id: int
    type: str  # "LINE" or "WORD"
    text: str
    confidence: float
    box: BoundingBox
    polygon: tuple[Point, ...]
    parent_id: int | None = None

    def to_rekognition(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "DetectedText": self.text,
            "Type": self.type,
            "Id": self.id,
            "Confidence": self.confidence,
            "Geometry": {
                "BoundingBox": box_json(self.box),
                "Polygon": [{"X": p.x, "Y": p.y} for p in self.polygon],
            },
        }
        if self.parent_id is not None:
            entry["ParentId"] = self.parent_id
        return entry

    @classmethod
    def from_rekognition(cls, entry: Mapping[str, Any]) -> TextDetection:
        """A detection from a DetectText response entry."""
        geometry = entry.get("Geometry") or {}
        parent = entry.get("ParentId")
        return cls(
            id=int(entry.get("Id", 0)),
            type=str(entry.get("Type", "")),
            text=str(entry.get("DetectedText", "")),
            confidence=float(entry.get("Confidence", 0.0)),
            box=box_from_json(geometry.get("BoundingBox")),
            polygon=tuple(
                Point(float(p.get("X", 0.0)), float(p.get("Y", 0.0)))
                for p in geometry.get("Polygon") or []
            ),
            parent_id=None if parent is None else int(parent),
        )


def detect_text_response(detections: Sequence[TextDetection]) -> dict[str, Any]:
    """The body of a DetectText response."""
    return {
        "TextDetections": [d.to_rekognition() for d in detections],
        "TextModelVersion": MODEL_VERSION,
    }
