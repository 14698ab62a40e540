"""The local backend's face pipeline: detect -> describe -> align -> embed -> calibrate.

Nothing loads at import or construction. The models are ``facetrail.inference`` models: they
load on first use, once per process, and pipelines built from equal settings share them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image

from facetrail.backends.base import LANDMARK_TYPES, BoundingBox, DetectedFace, Landmark
from facetrail.backends.local import calibration
from facetrail.backends.local.attributes import estimate_pose, estimate_quality
from facetrail.inference.detector import Detection, DetectorConfig, MTCNNDetector
from facetrail.inference.embedders import Embedder, create_embedder, embedder_class
from facetrail.modelfiles import MODELS, model_path
from facetrail.settings import Settings

FloatArray = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]

DETECTOR_VERSION = "mtcnn-tflite"


def as_rgb_array(image: Image.Image | UInt8Array) -> UInt8Array:
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


class FacePipeline:
    def __init__(self, settings: Settings) -> None:
        self.embedder_class = embedder_class(settings.embedder)
        self.settings = settings
        self.detector_config = DetectorConfig(
            min_face_size=settings.min_face_size,
            thresholds=(*DetectorConfig().thresholds[:2], settings.detection_threshold),
        )

    @property
    def model_version(self) -> str:
        """Detector + embedder + weights, e.g. ``mtcnn-tflite/mobilefacenet-192@d8ba40c0``."""
        embedder = self.embedder_class
        weights = MODELS[embedder.weights[-1]].sha256[:8]
        return f"{DETECTOR_VERSION}/{embedder.name}-{embedder.dim}@{weights}"

    @property
    def detector(self) -> MTCNNDetector:
        files = [model_path(self.settings, name) for name in ("pnet", "rnet", "onet")]
        return MTCNNDetector.shared(
            files, threads=self.settings.threads, config=self.detector_config
        )

    @property
    def embedder(self) -> Embedder:
        return create_embedder(self.settings)

    def detect(self, rgb: Image.Image | UInt8Array) -> list[Detection]:
        """Faces in pixel coordinates, largest first."""
        return self.detector.predict(as_rgb_array(rgb))

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
        return self.embedder.predict(as_rgb_array(rgb), detections)

    def similarity(self, cosine: float | npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """Cosine similarity -> Rekognition-like 0-100 similarity (see calibration.py)."""
        return calibration.similarity(self.settings.embedder, cosine)
