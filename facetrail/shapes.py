"""Rekognition's JSON shapes for our values, shared by `facetrail serve` and tag results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from facetrail.backends.base import (
    LANDMARK_TYPES,
    AgeRange,
    BoundingBox,
    DetectedFace,
    Emotion,
    EyeDirection,
    FaceAttributes,
    Flag,
    Gender,
    Landmark,
)

# FaceDetail's yes/no members.
FLAGS = (
    "Smile",
    "Eyeglasses",
    "Sunglasses",
    "Beard",
    "Mustache",
    "EyesOpen",
    "MouthOpen",
    "FaceOccluded",
)


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
    if face.attributes is not None:
        extra = attributes_json(face.attributes)
        # One Landmarks list: the five of DEFAULT, then the further types.
        extra["Landmarks"] = detail.get("Landmarks", []) + extra.get("Landmarks", [])
        detail.update(extra)
    return detail


def attributes_json(attributes: FaceAttributes) -> dict[str, Any]:
    """FaceDetail's attribute members (AgeRange, Gender, Emotions, Smile...) that were measured."""
    out: dict[str, Any] = {}
    if attributes.age_range is not None:
        out["AgeRange"] = {"Low": attributes.age_range.low, "High": attributes.age_range.high}
    if attributes.gender is not None:
        out["Gender"] = {
            "Value": attributes.gender.value,
            "Confidence": attributes.gender.confidence,
        }
    if attributes.emotions:
        out["Emotions"] = [
            {"Type": e.type, "Confidence": e.confidence} for e in attributes.emotions
        ]
    for name, flag in attributes.flags:
        out[name] = {"Value": flag.value, "Confidence": flag.confidence}
    if attributes.eye_direction is not None:
        eyes = attributes.eye_direction
        out["EyeDirection"] = {"Yaw": eyes.yaw, "Pitch": eyes.pitch, "Confidence": eyes.confidence}
    if attributes.landmarks:
        out["Landmarks"] = [{"Type": lm.type, "X": lm.x, "Y": lm.y} for lm in attributes.landmarks]
    return out


def attributes_from_json(raw: Mapping[str, Any]) -> FaceAttributes | None:
    """The attribute members of a Rekognition FaceDetail, or None when it has none."""
    age, sex = raw.get("AgeRange"), raw.get("Gender")
    emotions = tuple(
        sorted(
            (
                Emotion(type=str(e.get("Type", "")), confidence=float(e.get("Confidence", 0.0)))
                for e in raw.get("Emotions") or []
            ),
            key=lambda e: e.confidence,
            reverse=True,
        )
    )
    flags = tuple(
        (
            name,
            Flag(
                value=bool(raw[name].get("Value")),
                confidence=float(raw[name].get("Confidence", 0.0)),
            ),
        )
        for name in FLAGS
        if isinstance(raw.get(name), Mapping)
    )
    five = set(LANDMARK_TYPES)
    landmarks = tuple(
        Landmark(type=str(lm["Type"]), x=float(lm.get("X", 0.0)), y=float(lm.get("Y", 0.0)))
        for lm in raw.get("Landmarks") or []
        if lm.get("Type") and lm["Type"] not in five
    )
    eyes = raw.get("EyeDirection")
    eye_direction = (
        EyeDirection(
            yaw=float(eyes.get("Yaw", 0.0)),
            pitch=float(eyes.get("Pitch", 0.0)),
            confidence=float(eyes.get("Confidence", 0.0)),
        )
        if isinstance(eyes, Mapping)
        else None
    )
    if not (age or sex or emotions or flags or landmarks or eye_direction):
        return None
    return FaceAttributes(
        age_range=AgeRange(low=int(age.get("Low", 0)), high=int(age.get("High", 0)))
        if age
        else None,
        gender=Gender(value=str(sex.get("Value", "")), confidence=float(sex.get("Confidence", 0.0)))
        if sex
        else None,
        emotions=emotions,
        flags=flags,
        landmarks=landmarks,
        eye_direction=eye_direction,
    )
