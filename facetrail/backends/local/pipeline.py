"""The local backend's face pipeline: detect -> describe -> align -> embed -> calibrate.

Detection also works on small images and on tight face crops (a notebook crops each face of a
group photo with its BoundingBox and searches the crops one by one). MTCNN misses a face that
fills the whole image: its first stage scans 12-px windows that must lie inside the picture, and
forehead and chin are cut off. Such images are searched again on a padded copy resized to
``CROP_SIDE``, and the boxes mapped back to the caller's pixels.

Nothing loads at import or construction. The models are ``facetrail.inference`` models: they
load on first use, once per process, and pipelines built from equal settings share them.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from facetrail.backends.base import (
    LANDMARK_TYPES,
    BoundingBox,
    DetectedFace,
    FaceAttributes,
    Landmark,
)
from facetrail.backends.local import calibration
from facetrail.backends.local.attributes import estimate_pose, estimate_quality, face_attributes
from facetrail.errors import ConfigurationError
from facetrail.inference.detector import (
    DETECTORS,
    Detection,
    Detector,
    DetectorConfig,
)
from facetrail.inference.embedders import EMBEDDERS, Embedder, create_embedder, embedder_class
from facetrail.inference.face_attributes import AgeGenderModel, EmotionModel
from facetrail.inference.face_mesh import FaceMeshModel
from facetrail.inference.iris import IrisModel
from facetrail.modelfiles import MODELS, model_path
from facetrail.settings import Settings

FloatArray = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]

# Images whose shorter side is below this are always searched on the padded copy.
SMALL_SIDE = 160
# Padding on every side, as a fraction of the image's side: room for the forehead and chin a
# tight crop cut off. Grey (MTCNN's input zero after (x - 127.5) / 128) reads as no content.
# Longer side of the padded copy: small images are enlarged to it (never shrunk), larger ones
# with no face found shrunk to it (a face filling the image is then ~120 px, one cheap pass).
# PAD and CROP_SIDE were chosen on tight crops, 50-150 px wide, of dlib's examples/faces and 60
# celeba_identities photos: 644 of 665 found, the best of 0.25-0.5 x 160-320 (all found 95-97 %);
# the group photos the tight-crop benchmark scores were not used.
PAD = 0.5
PAD_VALUE = 127
CROP_SIDE = 240


def as_rgb_array(image: Image.Image | UInt8Array) -> UInt8Array:
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def model_version(detector: str, embedder: str) -> str:
    """Detector + embedder + weights, e.g. ``mtcnn-tflite/mobilefacenet-192@d8ba40c0``: faces
    found by another detector are aligned on other landmarks, so their vectors differ."""
    cls = embedder_class(embedder)
    weights = MODELS[cls.weights[-1]].sha256[:8]
    return f"{DETECTORS[detector].version}/{cls.name}-{cls.dim}@{weights}"


def settings_for_model_version(version: str) -> dict[str, str] | None:
    """The ``detector`` and ``embedder`` settings that compute ``version``; None if none does."""
    for detector in DETECTORS:
        for embedder in EMBEDDERS:
            if model_version(detector, embedder) == version:
                return {"detector": detector, "embedder": embedder}
    return None


class FacePipeline:
    def __init__(self, settings: Settings) -> None:
        self.embedder_class = embedder_class(settings.embedder)
        if settings.detector not in DETECTORS:
            known = ", ".join(sorted(DETECTORS))
            raise ConfigurationError(
                f"unknown detector {settings.detector!r} (FACETRAIL_DETECTOR; known: {known})"
            )
        self.settings = settings
        self.detector_config = DetectorConfig(
            min_face_size=settings.min_face_size,
            thresholds=(*DetectorConfig().thresholds[:2], settings.detection_threshold),
        )

    @property
    def model_version(self) -> str:
        return model_version(self.settings.detector, self.settings.embedder)

    @property
    def detector(self) -> Detector:
        cls = DETECTORS[self.settings.detector]
        files = [model_path(self.settings, name) for name in cls.weights]
        return cls.shared(files, threads=self.settings.threads, config=self.detector_config)

    @property
    def embedder(self) -> Embedder:
        return create_embedder(self.settings)

    @property
    def age_gender_model(self) -> AgeGenderModel:
        files = [model_path(self.settings, name) for name in ("age", "gender")]
        return AgeGenderModel.shared(files, threads=self.settings.threads)

    @property
    def emotion_model(self) -> EmotionModel:
        files = [model_path(self.settings, "emotion")]
        return EmotionModel.shared(files, threads=self.settings.threads)

    @property
    def face_mesh_model(self) -> FaceMeshModel:
        files = [model_path(self.settings, "face_mesh")]
        return FaceMeshModel.shared(files, threads=self.settings.threads)

    @property
    def iris_model(self) -> IrisModel:
        files = [model_path(self.settings, "iris")]
        return IrisModel.shared(files, threads=self.settings.threads)

    def attributes(
        self, rgb: Image.Image | UInt8Array, detections: Sequence[Detection]
    ) -> list[FaceAttributes]:
        """Age range, gender, emotions, smile, mouth and eyes open, eye direction and further
        landmarks (pupils among them) of each detected face, in order."""
        if not detections:
            return []
        pixels = as_rgb_array(rgb)
        age_gender = self.age_gender_model.predict(pixels, detections)
        emotion = self.emotion_model.predict(pixels, detections)
        meshes = self.face_mesh_model.predict(pixels, detections)
        eyes = self.iris_model.predict(pixels, meshes)
        size = (pixels.shape[1], pixels.shape[0])
        return [
            face_attributes(ag, em, mesh, size, found)
            for ag, em, mesh, found in zip(age_gender, emotion, meshes, eyes, strict=True)
        ]

    def detect(self, rgb: Image.Image | UInt8Array) -> list[Detection]:
        """Faces in pixel coordinates, largest first; small images and tight face crops too."""
        pixels = as_rgb_array(rgb)
        if min(pixels.shape[:2]) < SMALL_SIDE:
            return self._detect_padded(pixels, enlarge_only=True)
        faces = self.detector.predict(pixels)
        # Nothing found may be a face that fills the image: one cheap look on the padded copy.
        return faces or self._detect_padded(pixels, enlarge_only=False)

    def _detect_padded(self, pixels: UInt8Array, *, enlarge_only: bool) -> list[Detection]:
        """Detect on ``pixels`` padded by PAD and resized to CROP_SIDE (``enlarge_only``: or
        kept as it is if larger); boxes and points in ``pixels``' coordinates, boxes clipped
        to the image."""
        height, width = pixels.shape[:2]
        pad_x, pad_y = round(PAD * width), round(PAD * height)
        padded = cv2.copyMakeBorder(
            pixels, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3
        )
        scale = CROP_SIDE / max(padded.shape[:2])
        if enlarge_only:
            scale = max(scale, 1.0)
        size = (max(1, round(padded.shape[1] * scale)), max(1, round(padded.shape[0] * scale)))
        interp = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
        work = np.ascontiguousarray(cv2.resize(padded, size, interpolation=interp), np.uint8)
        sx, sy = padded.shape[1] / size[0], padded.shape[0] / size[1]
        shift = np.array([pad_x, pad_y], np.float32)
        limit = np.array([width, height], np.float32)
        out = []
        for face in self.detector.predict(work):
            corners = face.box.reshape(2, 2) * np.array([sx, sy], np.float32) - shift
            corners = np.clip(corners, 0, limit)
            if np.any(corners[1] - corners[0] < 1):
                continue  # the face was all in the padding
            points = face.landmarks * np.array([sx, sy], np.float32) - shift
            out.append(
                Detection(
                    box=corners.reshape(4).astype(np.float32),
                    score=face.score,
                    landmarks=points.astype(np.float32),
                )
            )
        out.sort(key=lambda f: f.area, reverse=True)
        return out

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
