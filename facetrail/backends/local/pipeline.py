"""The local backend's model pipeline: detect -> describe -> align -> embed -> calibrate.

Nothing loads at import or construction. Models load on first use, once per process: instances
built from equal settings share them (a worker may build several pipelines).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from PIL import Image

from facetrail.backends.base import LANDMARK_TYPES, BoundingBox, DetectedFace, Landmark
from facetrail.backends.local import calibration
from facetrail.backends.local.attributes import estimate_pose, estimate_quality
from facetrail.backends.local.detector import Detection, DetectorConfig, MTCNNDetector
from facetrail.backends.local.embedders import EMBEDDERS, Embedder, create_embedder
from facetrail.errors import ConfigurationError
from facetrail.modelfiles import MODELS, model_path
from facetrail.settings import Settings

FloatArray = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]
T = TypeVar("T")

DETECTOR_VERSION = "mtcnn-tflite"

_shared: dict[tuple[Any, ...], Any] = {}
_shared_lock = threading.Lock()


def _once(key: tuple[Any, ...], build: Callable[[], T]) -> T:
    """One instance per key per process, built on first request (thread-safe)."""
    with _shared_lock:
        if key not in _shared:
            _shared[key] = build()
        value: T = _shared[key]
        return value


def as_rgb_array(image: Image.Image | UInt8Array) -> UInt8Array:
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


class FacePipeline:
    def __init__(self, settings: Settings) -> None:
        if settings.embedder not in EMBEDDERS:
            known = ", ".join(sorted(EMBEDDERS))
            raise ConfigurationError(f"unknown embedder {settings.embedder!r} (known: {known})")
        self.settings = settings
        self.detector_config = DetectorConfig(
            min_face_size=settings.min_face_size,
            thresholds=(*DetectorConfig().thresholds[:2], settings.detection_threshold),
            threads=settings.threads,
        )

    @property
    def model_version(self) -> str:
        """Detector + embedder + weights, e.g. ``mtcnn-tflite/mobilefacenet-192@d8ba40c0``."""
        embedder = EMBEDDERS[self.settings.embedder]
        weights = MODELS[embedder.weights[-1]].sha256[:8]
        return f"{DETECTOR_VERSION}/{embedder.name}-{embedder.dim}@{weights}"

    @property
    def detector(self) -> MTCNNDetector:
        pnet, rnet, onet = (model_path(self.settings, name) for name in ("pnet", "rnet", "onet"))
        key = ("detector", pnet, rnet, onet, self.detector_config)
        return _once(key, lambda: MTCNNDetector(pnet, rnet, onet, self.detector_config))

    @property
    def embedder(self) -> Embedder:
        settings = self.settings
        key = ("embedder", settings.embedder, settings.resolved_models_dir, settings.threads)
        return _once(key, lambda: create_embedder(self.settings))

    def detect(self, rgb: Image.Image | UInt8Array) -> list[Detection]:
        """Faces in pixel coordinates, largest first."""
        return self.detector.detect(as_rgb_array(rgb))

    def describe(self, rgb: Image.Image | UInt8Array, detection: Detection) -> DetectedFace:
        """Rekognition-style face: ratios of the image size, confidence 0-100, pose, quality."""
        pixels = as_rgb_array(rgb)
        height, width = pixels.shape[:2]
        x0, y0, x1, y1 = (float(v) for v in detection.box)
        box = BoundingBox(
            left=x0 / width, top=y0 / height, width=(x1 - x0) / width, height=(y1 - y0) / height
        )
        landmarks = tuple(
            Landmark(type=kind, x=float(x) / width, y=float(y) / height)
            for kind, (x, y) in zip(LANDMARK_TYPES, detection.landmarks, strict=True)
        )
        return DetectedFace(
            box=box,
            confidence=min(100.0, max(0.0, detection.score * 100.0)),
            landmarks=landmarks,
            pose=estimate_pose(detection.landmarks),
            quality=estimate_quality(pixels, detection.box),
        )

    def embed(
        self, rgb: Image.Image | UInt8Array, detections: Sequence[Detection]
    ) -> tuple[FloatArray, list[UInt8Array]]:
        """(N, dim) unit vectors and the aligned RGB crops they came from."""
        return self.embedder.embed(as_rgb_array(rgb), detections)

    def similarity(self, cosine: float | npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """Cosine similarity -> Rekognition-like 0-100 similarity (see calibration.py)."""
        return calibration.similarity(self.settings.embedder, cosine)
