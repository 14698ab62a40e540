"""Rekognition's JSON shapes for our values, shared by `facetrail serve` and tag results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from facetrail.backends.base import BoundingBox, DetectedFace


def box_json(box: BoundingBox) -> dict[str, float]:
    return {"Width": box.width, "Height": box.height, "Left": box.left, "Top": box.top}


def _clip01(value: float) -> float:
    return min(1.0, max(0.0, value))


def box_from_json(raw: Mapping[str, Any] | None) -> BoundingBox:
    """A Rekognition BoundingBox, clipped to the image: the service's may reach past the edges."""
    raw = raw or {}
    left, top = float(raw.get("Left", 0.0)), float(raw.get("Top", 0.0))
    right = left + float(raw.get("Width", 0.0))
    bottom = top + float(raw.get("Height", 0.0))
    x0, y0, x1, y1 = _clip01(left), _clip01(top), _clip01(right), _clip01(bottom)
    return BoundingBox(left=x0, top=y0, width=max(0.0, x1 - x0), height=max(0.0, y1 - y0))


def face_detail_json(face: DetectedFace) -> dict[str, Any]:
    """FaceDetail / ComparedFace with what the local backend measures."""
    detail: dict[str, Any] = {"BoundingBox": box_json(face.box)}
    if face.landmarks:
        detail["Landmarks"] = [{"Type": lm.type, "X": lm.x, "Y": lm.y} for lm in face.landmarks]
    if face.pose is not None:
        detail["Pose"] = {"Roll": face.pose.roll, "Yaw": face.pose.yaw, "Pitch": face.pose.pitch}
    if face.quality is not None:
        detail["Quality"] = {
            "Brightness": face.quality.brightness,
            "Sharpness": face.quality.sharpness,
        }
    detail["Confidence"] = face.confidence
    return detail
