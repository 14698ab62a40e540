"""The baseline: the face_recognition library as it is typically used.

dlib's HOG detector (``face_locations`` defaults: one upsample), the 128-d ResNet encoder
(``face_encodings`` defaults) and the library's default tolerance of 0.6 on Euclidean distance.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlib
import face_recognition
import numpy as np
import numpy.typing as npt

from bench.datasets import Labelled, Pair, PixelBox
from bench.metrics import BASELINE_TOLERANCE as TOLERANCE
from bench.systems import IdentifyOutcome, PairOutcome

Encodings = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Faces:
    boxes: list[PixelBox]
    encodings: Encodings  # (n, 128), rows in the order of ``boxes``

    def largest(self) -> int | None:
        if not self.boxes:
            return None
        return max(range(len(self.boxes)), key=lambda i: self.boxes[i].area)


def _box(css: tuple[int, int, int, int]) -> PixelBox:
    top, right, bottom, left = css
    return PixelBox(left=left, top=top, width=right - left, height=bottom - top)


def analyse(path: Path, *, encode: bool = True) -> Faces:
    """Locations (+ encodings) the way the library's README does it."""
    image: Any = face_recognition.load_image_file(str(path))
    locations = face_recognition.face_locations(image)
    if encode and locations:
        encodings = np.asarray(face_recognition.face_encodings(image, locations))
    else:
        encodings = np.zeros((0, 128))
    return Faces([_box(css) for css in locations], encodings)


class Gallery:
    """Enrolled encodings; a face is named by its nearest one if within the tolerance."""

    def __init__(self, tolerance: float = TOLERANCE) -> None:
        self.tolerance = tolerance
        self._encodings: list[Encodings] = []
        self._labels: list[str] = []

    def add(self, encoding: Encodings, label: str) -> None:
        self._encodings.append(encoding)
        self._labels.append(label)

    def __len__(self) -> int:
        return len(self._labels)

    def closest(self, encoding: Encodings) -> tuple[str, float] | None:
        """The nearest enrolled label and its distance, whatever the tolerance."""
        if not self._labels:
            return None
        distances = face_recognition.face_distance(np.asarray(self._encodings), encoding)
        best = int(np.argmin(distances))
        return self._labels[best], float(distances[best])

    def nearest(self, encoding: Encodings) -> str | None:
        """The nearest enrolled label if within the tolerance, else unknown."""
        found = self.closest(encoding)
        return found[0] if found is not None and found[1] <= self.tolerance else None


class Baseline:
    label = "face_recognition"

    def __init__(self, tolerance: float = TOLERANCE) -> None:
        self.tolerance = tolerance
        self._cache: dict[Path, Faces] = {}

    @property
    def version(self) -> str:
        return (
            f"face_recognition {importlib.metadata.version('face_recognition')}, "
            f"dlib {dlib.__version__}: HOG detector (1 upsample), 128-d ResNet"
        )

    @property
    def rule(self) -> str:
        return f"distance <= {self.tolerance:g}"

    def faces(self, path: Path) -> Faces:
        if path not in self._cache:
            self._cache[path] = analyse(path)
        return self._cache[path]

    def compare(self, pair: Pair) -> PairOutcome:
        source, target = self.faces(pair.a), self.faces(pair.b)
        index = source.largest()
        if index is None or not target.boxes:
            return PairOutcome(None, None)
        distance = float(
            np.min(face_recognition.face_distance(target.encodings, source.encodings[index]))
        )
        return PairOutcome(score=-distance, same=distance <= self.tolerance)

    def detect(self, path: Path) -> list[PixelBox]:
        return analyse(path, encode=False).boxes

    def identify(self, enroll: Sequence[Labelled], probes: Sequence[Path]) -> IdentifyOutcome:
        gallery = Gallery(self.tolerance)
        failures = 0
        error = ""
        for item in enroll:
            faces = self.faces(item.path)
            index = faces.largest()
            if index is None:
                failures += 1
                error = error or f"{item.path.name}: no face to enroll"
            else:
                gallery.add(faces.encodings[index], item.label)
        predictions: list[str | None] = []
        ranked_first: list[str | None] = []
        without_face = 0
        for path in probes:
            faces = self.faces(path)
            index = faces.largest()
            found = None if index is None else gallery.closest(faces.encodings[index])
            without_face += index is None
            predictions.append(found[0] if found and found[1] <= self.tolerance else None)
            ranked_first.append(found[0] if found else None)
        return IdentifyOutcome(
            predictions,
            without_face,
            ranked_first=ranked_first,
            enroll_failures=failures,
            first_error=error,
        )
