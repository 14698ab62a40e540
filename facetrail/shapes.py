"""Rekognition's JSON shapes for our values, shared by `facetrail serve` and tag results."""

from __future__ import annotations

from typing import Any

from facetrail.backends.base import BoundingBox, DetectedFace


def box_json(box: BoundingBox) -> dict[str, float]:
    return {"Width": box.width, "Height": box.height, "Left": box.left, "Top": box.top}


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
