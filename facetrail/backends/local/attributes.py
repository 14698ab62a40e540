"""Pose and quality of a detected face, estimated cheaply from its 5 landmarks and pixels; and
the attribute models' probabilities (``facetrail.inference.face_attributes``) in Rekognition's
terms: AgeRange, Gender, Emotions, Smile, MouthOpen from the face mesh's geometry, EyesOpen from
the iris model's eyelid contour, and the pupils and EyeDirection from the iris model's iris centres
between the mesh's eye corners.

Pose is a geometric approximation, not a fitted 3D head model: expect errors of ~10 degrees, and
values that saturate beyond ~60 degrees of yaw or pitch, where 5 points stop being informative.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from facetrail.backends.base import (
    AgeRange,
    Emotion,
    EyeDirection,
    FaceAttributes,
    Flag,
    Gender,
    Landmark,
    Pose,
    Quality,
)
from facetrail.inference.face_attributes import (
    AGE_VALUES,
    EMOTION_CLASSES,
    GENDER_CLASSES,
    AgeGender,
)
from facetrail.inference.iris import Eyes

# Nose tip depth in front of the eye/mouth plane, over the inter-eye distance (yaw) and over the
# eye-to-mouth distance (pitch). Average adult proportions; they set the degrees-per-offset slope.
NOSE_DEPTH_OVER_EYES = 0.5
NOSE_DEPTH_OVER_EYE_MOUTH = 0.45
# Where MTCNN's nose point sits between the eye line (0) and the mouth line (1) on a frontal face:
# the median over dlib's johns chips (55 near-frontal faces). The ArcFace template says 0.495,
# but MTCNN places the nose lower than that template does.
FRONTAL_NOSE_HEIGHT = 0.565
# Sharpness: variance of the Laplacian on the face scaled to SHARPNESS_SIDE px, squashed as
# 100 * (1 - exp(-var / SHARPNESS_SCALE)). With 250, crisp portraits score 80-97, the same faces
# blurred with a 2-px Gaussian 25-45, and 40-px faces (little detail to show) 10-20. Scaling
# to a fixed side first keeps a large face from scoring higher just for its size.
SHARPNESS_SIDE = 112
SHARPNESS_SCALE = 250.0


def estimate_pose(landmarks: npt.NDArray[np.float32]) -> Pose:
    """Roll, yaw and pitch in degrees from (image-left eye, image-right eye, nose, mouth L, R).

    roll: angle of the eye line; positive when the image-right eye is lower (clockwise on screen).
    yaw: nose offset from the eye/mouth midline; positive when the nose points to image-right.
    pitch: nose height between eye and mouth lines; positive when the face tilts up.
    """
    pts = np.asarray(landmarks, np.float64).reshape(5, 2)
    eye_l, eye_r, nose, mouth_l, mouth_r = pts
    dx, dy = eye_r - eye_l
    roll = math.atan2(dy, dx)
    # Undo the roll so that yaw and pitch are measured along the face's own axes.
    c, s = math.cos(-roll), math.sin(-roll)
    upright = pts @ np.array([[c, s], [-s, c]])
    eye_l, eye_r, nose, mouth_l, mouth_r = upright
    eyes, mouth = (eye_l + eye_r) / 2, (mouth_l + mouth_r) / 2
    eye_dist = max(float(np.linalg.norm(eye_r - eye_l)), 1e-6)
    eye_mouth = max(float(mouth[1] - eyes[1]), 1e-6)
    midline_x = (eyes[0] + mouth[0]) / 2
    yaw = math.atan((nose[0] - midline_x) / eye_dist / NOSE_DEPTH_OVER_EYES)
    height = (nose[1] - eyes[1]) / eye_mouth
    pitch = math.atan((FRONTAL_NOSE_HEIGHT - height) / NOSE_DEPTH_OVER_EYE_MOUTH)
    return Pose(roll=math.degrees(roll), yaw=math.degrees(yaw), pitch=math.degrees(pitch))


def estimate_quality(rgb: npt.NDArray[np.uint8], box: npt.NDArray[np.float32]) -> Quality:
    """Brightness (mean luma of the face box, 0-100) and sharpness (0-100, see module constants)."""
    height, width = rgb.shape[:2]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(width, math.ceil(box[2])), min(height, math.ceil(box[3]))
    if x1 <= x0 or y1 <= y0:
        return Quality(brightness=0.0, sharpness=0.0)
    face = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    gray = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    brightness = float(gray.mean()) / 255.0 * 100.0
    side = SHARPNESS_SIDE
    interp = cv2.INTER_AREA if min(gray.shape) > side else cv2.INTER_LINEAR
    scaled = cv2.resize(gray, (side, side), interpolation=interp)
    variance = float(cv2.Laplacian(scaled, cv2.CV_64F).var())
    sharpness = 100.0 * (1.0 - math.exp(-variance / SHARPNESS_SCALE))
    return Quality(brightness=brightness, sharpness=sharpness)


# AgeRange: the central part of the age network's distribution holding AGE_RANGE_MASS of it
# (its 10th to 90th percentile). Chosen before measuring; docs/attributes.md gives how often the
# true age falls inside on UTKFace.
AGE_RANGE_MASS = 0.8
# fer's classes -> Rekognition's EmotionName. No model here gives CONFUSED: it is left out.
EMOTION_TYPES = {
    "angry": "ANGRY",
    "disgust": "DISGUSTED",
    "fear": "FEAR",
    "happy": "HAPPY",
    "sad": "SAD",
    "surprise": "SURPRISED",
    "neutral": "CALM",
}


def age_range(probabilities: npt.NDArray[np.float32]) -> AgeRange:
    """Low and high age (whole years) around the middle AGE_RANGE_MASS of the distribution."""
    cumulative = np.cumsum(np.asarray(probabilities, np.float64))
    cumulative /= cumulative[-1]
    tail = (1.0 - AGE_RANGE_MASS) / 2
    low = float(AGE_VALUES[int(np.searchsorted(cumulative, tail))])
    high = float(AGE_VALUES[int(np.searchsorted(cumulative, 1.0 - tail))])
    return AgeRange(low=math.floor(low), high=max(math.ceil(high), math.floor(low) + 1))


def expected_age(probabilities: npt.NDArray[np.float32]) -> float:
    """The distribution's mean age (the package's own point estimate)."""
    probs = np.asarray(probabilities, np.float64)
    return float(probs @ AGE_VALUES.astype(np.float64) / probs.sum())


def gender(probabilities: npt.NDArray[np.float32]) -> Gender:
    probs = np.asarray(probabilities, np.float64)
    best = int(np.argmax(probs))
    return Gender(value=GENDER_CLASSES[best], confidence=float(probs[best] / probs.sum() * 100))


def emotions(probabilities: npt.NDArray[np.float32]) -> tuple[Emotion, ...]:
    """Rekognition's Emotions, most confident first (confidences 0-100, summing to 100)."""
    probs = np.asarray(probabilities, np.float64)
    probs = probs / probs.sum()
    found = [
        Emotion(type=EMOTION_TYPES[name], confidence=float(p * 100))
        for name, p in zip(EMOTION_CLASSES, probs, strict=True)
    ]
    return tuple(sorted(found, key=lambda e: e.confidence, reverse=True))


def smile(probabilities: npt.NDArray[np.float32]) -> Flag:
    """Smile from the emotion model: a smile when "happy" is more likely than not."""
    probs = np.asarray(probabilities, np.float64)
    happy = float(probs[EMOTION_CLASSES.index("happy")] / probs.sum())
    return Flag(value=happy > 0.5, confidence=max(happy, 1 - happy) * 100)


# MouthOpen: the gap between the inner lips (mesh points 13, 14) over the mouth's inner width
# (78, 308) above this. Chosen on the even rows of celeba_attributes (Mouth_Slightly_Open, 95 %
# there); the attribute benchmark scores the odd rows only.
MOUTH_OPEN_RATIO = 0.09


def mouth_open(mesh: npt.NDArray[np.float32]) -> Flag:
    """MouthOpen from the 468-point mesh; confidence grows with the distance from the cut."""
    points = np.asarray(mesh, np.float64)
    width = float(np.linalg.norm(points[78] - points[308]))
    ratio = float(np.linalg.norm(points[13] - points[14])) / max(width, 1e-6)
    margin = min(1.0, abs(ratio - MOUTH_OPEN_RATIO) / MOUTH_OPEN_RATIO)
    return Flag(value=ratio > MOUTH_OPEN_RATIO, confidence=50.0 + 50.0 * margin)


# EyeDirection: each iris centre's offset from the midpoint of its eye's corners, along and across
# the corner line, over half the corner distance, is the sine of the eye's turn times
# EYE_HALF_WIDTH_OVER_RADIUS (an eye opening of ~30 mm on an eyeball of ~12 mm radius: average
# adult anatomy, not fitted to any photos; no gaze-labelled photos were at hand). Yaw is positive
# towards the image's right and pitch upwards, as Pose; the two eyes are averaged.
EYE_HALF_WIDTH_OVER_RADIUS = 1.25
# Each eye's mesh corners, image-left first (as the iris model's centres are ordered).
EYE_CORNER_POINTS = ((33, 133), (362, 263))


def eye_direction(mesh: npt.NDArray[np.float32], irises: npt.NDArray[np.float32]) -> EyeDirection:
    """Yaw and pitch of the eyes relative to the head; the confidence falls as the two eyes'
    estimates disagree (100 when they agree, 0 when they differ by 30 degrees or more)."""
    points = np.asarray(mesh, np.float64)
    turns = []
    for (a, b), iris in zip(EYE_CORNER_POINTS, np.asarray(irises, np.float64), strict=True):
        along = points[b] - points[a]
        half = max(float(np.linalg.norm(along)) / 2, 1e-6)
        unit = along / (2 * half)
        across = np.array([-unit[1], unit[0]])  # downwards in the image for a level eye
        offset = iris - (points[a] + points[b]) / 2
        sines = np.array([offset @ unit, -(offset @ across)]) / half * EYE_HALF_WIDTH_OVER_RADIUS
        turns.append(np.degrees(np.arcsin(np.clip(sines, -1.0, 1.0))))
    yaw, pitch = np.mean(turns, axis=0)
    spread = float(np.max(np.abs(turns[0] - turns[1])))
    return EyeDirection(
        yaw=float(yaw), pitch=float(pitch), confidence=max(0.0, 100.0 * (1 - spread / 30.0))
    )


def pupils(irises: npt.NDArray[np.float32], width: int, height: int) -> tuple[Landmark, ...]:
    """leftPupil and rightPupil (the image's left and right) as image ratios."""
    left, right = np.asarray(irises, np.float64)
    return (
        Landmark(type="leftPupil", x=float(left[0]) / width, y=float(left[1]) / height),
        Landmark(type="rightPupil", x=float(right[0]) / width, y=float(right[1]) / height),
    )


# Rekognition's landmark types -> MediaPipe face mesh points. "left" is the image's left, as in
# Rekognition (eyeLeft has the smaller X): the subject's right eye and brow. The pupils come from
# the iris model (``pupils``); the five DEFAULT types come from MTCNN.
MESH_LANDMARKS = {
    "leftEyeBrowLeft": 70,
    "leftEyeBrowRight": 107,
    "leftEyeBrowUp": 105,
    "rightEyeBrowLeft": 336,
    "rightEyeBrowRight": 300,
    "rightEyeBrowUp": 334,
    "leftEyeLeft": 33,
    "leftEyeRight": 133,
    "leftEyeUp": 159,
    "leftEyeDown": 145,
    "rightEyeLeft": 362,
    "rightEyeRight": 263,
    "rightEyeUp": 386,
    "rightEyeDown": 374,
    "noseLeft": 98,
    "noseRight": 327,
    "mouthUp": 0,
    "mouthDown": 17,
    "upperJawlineLeft": 132,
    "midJawlineLeft": 172,
    "chinBottom": 152,
    "midJawlineRight": 397,
    "upperJawlineRight": 361,
}


# EyesOpen: each eye's lid gap (the iris model's lid contour: lower points 3, 4, 5 facing upper
# points 11, 12, 13, i.e. mesh points 144-160, 145-159, 153-158) over its corner distance (contour
# points 0 and 8), the two eyes averaged, above EYES_OPEN_RATIO. The face mesh's own lid points
# were tried first and do not close with the eyes (closed and open eyes overlap), the iris model's
# do. The cut has the fewest errors on hand-labelled faces of celeba_attributes,
# celeba_identities and glint_celebrity_chips (2 of 101 faces, 9 of them closed; bench/labels/),
# the middle of the widest tying gap; the attribute benchmark scores other sets
# (docs/attributes.md).
EYES_OPEN_RATIO = 0.176
LID_CORNERS = (0, 8)
LID_PAIRS = ((3, 11), (4, 12), (5, 13))


def eye_openings(eyes: Eyes) -> tuple[float, float]:
    """Each eye's mean lid gap over its corner distance, image-left eye first."""
    out = []
    lower, upper = (list(side) for side in zip(*LID_PAIRS, strict=True))
    for lid in np.asarray(eyes.lids, np.float64):
        width = max(float(np.linalg.norm(lid[LID_CORNERS[0]] - lid[LID_CORNERS[1]])), 1e-6)
        gap = np.linalg.norm(lid[upper] - lid[lower], axis=1).mean()
        out.append(float(gap) / width)
    return out[0], out[1]


def eyes_open(eyes: Eyes) -> Flag:
    """EyesOpen from the iris model's lids (both eyes); confidence grows with the distance from
    the cut, as MouthOpen's."""
    ratio = sum(eye_openings(eyes)) / 2
    margin = min(1.0, abs(ratio - EYES_OPEN_RATIO) / EYES_OPEN_RATIO)
    return Flag(value=ratio > EYES_OPEN_RATIO, confidence=50.0 + 50.0 * margin)


def mesh_landmarks(mesh: npt.NDArray[np.float32], width: int, height: int) -> tuple[Landmark, ...]:
    """MESH_LANDMARKS' points as Rekognition landmarks (ratios of the image's size)."""
    return tuple(
        Landmark(type=kind, x=float(mesh[i][0]) / width, y=float(mesh[i][1]) / height)
        for kind, i in MESH_LANDMARKS.items()
    )


def face_attributes(
    age_gender: AgeGender | None,
    emotion: npt.NDArray[np.float32] | None,
    mesh: npt.NDArray[np.float32] | None = None,
    size: tuple[int, int] = (1, 1),
    eyes: Eyes | None = None,
) -> FaceAttributes:
    """One face's attributes from whichever models ran (None: that model did not); ``size``:
    the image's (width, height), for landmark ratios; ``eyes``: the iris model's answer, which
    needs the mesh."""
    flags: list[tuple[str, Flag]] = []
    if emotion is not None:
        flags.append(("Smile", smile(emotion)))
    landmarks: tuple[Landmark, ...] = ()
    direction = None
    if mesh is not None:
        flags.append(("MouthOpen", mouth_open(mesh)))
        landmarks = mesh_landmarks(mesh, *size)
        if eyes is not None:
            flags.append(("EyesOpen", eyes_open(eyes)))
            landmarks += pupils(eyes.centres, *size)
            direction = eye_direction(mesh, eyes.centres)
    return FaceAttributes(
        age_range=age_range(age_gender.age) if age_gender is not None else None,
        gender=gender(age_gender.gender) if age_gender is not None else None,
        emotions=emotions(emotion) if emotion is not None else (),
        flags=tuple(flags),
        landmarks=landmarks,
        eye_direction=direction,
    )
