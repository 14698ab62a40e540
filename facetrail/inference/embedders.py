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
from facetrail.inference.runtime import require, tflite_interpreter
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

    The file's input is fixed at two faces, ``[2, 112, 112, 3]`` RGB scaled ``(x - 127.5) / 128``
    (resizing the batch fails inside the graph: ``resize_tensor_input`` to 1, 3 or 4 faces, with
    ``strict=False``, stops at allocation with "XNNPack delegate failed to reshape runtime" at
    node 230, a reshape that pins the batch at two), so faces go two per call, an odd one padded.
    ``flip=True`` sums each face's embedding with its mirror image's instead (one call per face);
    on deepface's pairs it changed 1 decision in 580, so it is off (docs/models.md).
    """

    name = "mobilefacenet"
    dim = 192
    weights = ("mobilefacenet",)
    calibration = (31.4007, -15.6564)  # similarity 80 at cosine 0.543

    def __init__(self, files: Sequence[Path], *, threads: int = 1, flip: bool = False) -> None:
        super().__init__(files, threads=threads)
        self.flip = flip
        self._interpreter: Any = None

    def _load(self) -> None:
        interpreter = tflite_interpreter(self.threads, path=self.files[0])
        interpreter.allocate_tensors()
        self._interpreter = interpreter

    def _embed(
        self, rgb: UInt8Array, detections: Sequence[Detection]
    ) -> tuple[FloatArray, list[UInt8Array]]:
        crops = [align_face(rgb, d.landmarks) for d in detections]
        batch = (np.stack(crops).astype(np.float32) - 127.5) / 128.0
        if self.flip:
            pairs = [np.stack([face, face[:, ::-1]]) for face in batch]
            vectors = [self._run(pair).sum(axis=0) for pair in pairs]
            return np.stack(vectors).astype(np.float32), crops
        out = []
        for start in range(0, len(batch), 2):
            pair = batch[start : start + 2]
            if len(pair) == 1:  # odd count: pad with a copy, drop its output
                pair = np.concatenate([pair, pair])
            out.append(self._run(pair)[: len(batch) - start])
        return np.concatenate(out).astype(np.float32), crops

    def _run(self, pair: FloatArray) -> FloatArray:
        interp = self._interpreter
        interp.set_tensor(interp.get_input_details()[0]["index"], np.ascontiguousarray(pair))
        interp.invoke()
        return np.array(interp.get_tensor(interp.get_output_details()[0]["index"]), np.float32)


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
