"""Face embedders: aligned face crop -> L2-normalised vector. Models load on first use.

``EMBEDDERS`` maps a name (``Settings.embedder``) to its class; ``create_embedder(settings)``
gives the process's shared instance for the settings' model files and thread count.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from facetrail.errors import ConfigurationError
from facetrail.inference.align import align_face
from facetrail.inference.base import Model
from facetrail.inference.detector import Detection, dlib_style_box
from facetrail.inference.runtime import TFLiteNet, require
from facetrail.modelfiles import model_path
from facetrail.settings import Settings

FloatArray = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]
Embeddings = tuple[FloatArray, list[UInt8Array]]


class Embedder(Model[Embeddings]):
    """Turns the faces of an image into unit vectors; cosine similarity compares them.

    ``predict(rgb, detections)``: (N, dim) float32 unit rows, and the aligned RGB crop each was
    computed from. ``files`` are the model files named by ``weights``, in that order.
    """

    name: ClassVar[str]
    dim: ClassVar[int]
    # The weights that define the embedding space (the last one's sha256 is in model versions).
    weights: ClassVar[tuple[str, ...]]
    # (a, b) of the cosine -> 0-100 similarity curve (facetrail/backends/local/calibration.py),
    # as `python -m bench.calibrate` prints them (Platt scaling, classes weighted equally).
    calibration: ClassVar[tuple[float, float]]
    serialise = True  # interpreters are not thread-safe

    def _predict(self, rgb: UInt8Array, detections: Sequence[Detection]) -> Embeddings:
        if not detections:
            return np.zeros((0, self.dim), np.float32), []
        vectors, crops = self._embed(np.ascontiguousarray(rgb), detections)
        return _l2_normalise(vectors), crops

    @abc.abstractmethod
    def _embed(
        self, rgb: UInt8Array, detections: Sequence[Detection]
    ) -> tuple[FloatArray, list[UInt8Array]]: ...


class MobileFaceNetEmbedder(Embedder):
    """MobileFaceNet (TFLite, 192-d) on 112x112 ArcFace-aligned crops.

    The file's input is fixed at two faces, ``[2, 112, 112, 3]`` RGB scaled ``(x - 127.5) / 128``,
    and its last reshape pins the batch at two (``[2, 192]``: resizing the input alone fails at
    allocation, "XNNPack delegate failed to reshape runtime", node 230). ``runtime.TFLiteNet``
    loads it with that reshape's batch left free, so faces run in batches of their own count
    (power-of-two pieces) and a one-face photo pays for one face, not two; the outputs equal the
    original file's to the last bit.
    """

    name = "mobilefacenet"
    dim = 192
    weights = ("mobilefacenet",)
    calibration = (31.4007, -15.6564)  # similarity 80 at cosine 0.543
    max_batch = 8
    output = "embeddings"
    flip: ClassVar[bool] = False

    def __init__(self, files: Sequence[Path], *, threads: int = 1) -> None:
        super().__init__(files, threads=threads)
        self._net: TFLiteNet | None = None

    def _load(self) -> None:
        self._net = TFLiteNet(self.files[0].read_bytes(), self.threads)

    def _embed(
        self, rgb: UInt8Array, detections: Sequence[Detection]
    ) -> tuple[FloatArray, list[UInt8Array]]:
        assert self._net is not None, "predict() loads the model first"
        crops = [align_face(rgb, d.landmarks, antialias=True) for d in detections]
        batch = (np.stack(crops).astype(np.float32) - 127.5) / 128.0
        if self.flip:
            batch = np.concatenate([batch, batch[:, :, ::-1]])
        (vectors,) = self._net.run_batched(batch, [self.output], self.max_batch)
        if self.flip:
            vectors = vectors[: len(crops)] + vectors[len(crops) :]
        return np.asarray(vectors, np.float32), crops


class MobileFaceNetFlipEmbedder(MobileFaceNetEmbedder):
    """MobileFaceNet with flip test-time augmentation: a face's vector is the sum of its crop's
    and its mirror image's, which evens out small alignment errors at twice the embedding cost.

    Its own embedding space (a collection made with one is searched with the same one) and its
    own calibration curve.
    """

    name = "mobilefacenet-flip"
    flip = True
    calibration = (30.8206, -15.4067)  # similarity 80 at cosine 0.545


class DlibEmbedder(Embedder):
    """dlib's ResNet (128-d) on 150x150 chips from dlib's own 5-point shape predictor.

    Needs the ``dlib`` extra. The shape predictor was trained on dlib detector boxes, so it is
    given the MTCNN box converted to that convention (``dlib_style_box``).
    """

    name = "dlib"
    dim = 128
    weights = ("dlib_shape_predictor_5", "dlib_resnet")
    calibration = (247.5927, -229.3659)  # similarity 80 at cosine 0.932

    def __init__(self, files: Sequence[Path], *, threads: int = 1) -> None:
        super().__init__(files, threads=threads)
        self._dlib: Any = None
        self._shapes: Any = None
        self._net: Any = None

    def _load(self) -> None:
        dlib = require("dlib", extra="dlib", what="the dlib embedder")
        self._dlib = dlib
        self._shapes = dlib.shape_predictor(str(self.files[0]))
        self._net = dlib.face_recognition_model_v1(str(self.files[1]))

    def _embed(
        self, rgb: UInt8Array, detections: Sequence[Detection]
    ) -> tuple[FloatArray, list[UInt8Array]]:
        dlib = self._dlib
        shapes = dlib.full_object_detections()
        for d in detections:
            x0, y0, x1, y1 = (round(float(v)) for v in dlib_style_box(d))
            shapes.append(self._shapes(rgb, dlib.rectangle(x0, y0, x1, y1)))
        chips = [np.asarray(c, np.uint8) for c in dlib.get_face_chips(rgb, shapes, size=150)]
        vectors = [np.asarray(self._net.compute_face_descriptor(c), np.float32) for c in chips]
        return np.stack(vectors), chips


EMBEDDERS: dict[str, type[Embedder]] = {
    MobileFaceNetEmbedder.name: MobileFaceNetEmbedder,
    MobileFaceNetFlipEmbedder.name: MobileFaceNetFlipEmbedder,
    DlibEmbedder.name: DlibEmbedder,
}


def embedder_class(name: str) -> type[Embedder]:
    try:
        return EMBEDDERS[name]
    except KeyError:
        known = ", ".join(sorted(EMBEDDERS))
        raise ConfigurationError(
            f"unknown embedder {name!r} (FACETRAIL_EMBEDDER; known: {known})"
        ) from None


def create_embedder(settings: Settings) -> Embedder:
    """The process's embedder for ``settings`` (its files resolved now, loaded on first use)."""
    cls = embedder_class(settings.embedder)
    files = [model_path(settings, name) for name in cls.weights]
    return cls.shared(files, threads=settings.threads)


def _l2_normalise(vectors: FloatArray) -> FloatArray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-10), np.float32)
