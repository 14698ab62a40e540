"""facetrail's side: the local backend for compare/detect, the real job service for identify.

Everything runs against a private home (SQLite database in a temporary folder) with the user's
installed model files, and without a broker, so jobs run in this process.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.datasets import Labelled, Pair, PixelBox
from bench.systems import IdentifyOutcome, PairOutcome
from facetrail.api import Facetrail
from facetrail.backends import get_recognizer
from facetrail.backends.base import Recognizer
from facetrail.errors import NoFaceError
from facetrail.images import LoadedImage, load_image
from facetrail.services.jobs import EnrollEntry
from facetrail.settings import Settings
from facetrail.weights import install_models


def bench_settings(home: Path) -> Settings:
    """A private database in ``home``; model files where ``facetrail models install`` puts them."""
    models_dir = Settings.from_env().resolved_models_dir
    return Settings.from_env(home=home, models_dir=models_dir, database_url="", broker_url="")


def largest_face(faces: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The face with the largest box (boxes are ratios of one image, so areas compare)."""
    if not faces:
        return None
    return max(faces, key=lambda f: float(f["box"]["width"]) * float(f["box"]["height"]))


def enroll_entries(items: Sequence[Labelled]) -> list[EnrollEntry]:
    return [EnrollEntry(source=str(item.path), external_id=item.label) for item in items]


def persons_by_image(report: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """Job report -> {image source: (outcome, person of its largest face)}.

    The outcome is ``"face"``, ``"no face"`` or ``"failed"`` (the item did not succeed).
    """
    out: dict[str, tuple[str, str | None]] = {}
    for image in report["images"]:
        if image["status"] != "succeeded":
            out[str(image["image"])] = ("failed", None)
            continue
        face = largest_face(image["faces"])
        out[str(image["image"])] = ("no face", None) if face is None else ("face", face["person"])
    return out


def failed_items(report: dict[str, Any]) -> int:
    return sum(1 for image in report["images"] if image["status"] != "succeeded")


def first_error(report: dict[str, Any]) -> str:
    for image in report["images"]:
        if image["status"] != "succeeded":
            return f"{Path(str(image['image'])).name}: {image['error_code']}: {image['error']}"
    return ""


class FacetrailSide:
    label = "facetrail"

    def __init__(self, home: Path) -> None:
        self.settings = bench_settings(home)
        install_models(self.settings, log=lambda line: print(line, file=sys.stderr))
        self.recognizer: Recognizer = get_recognizer(self.settings)
        self.api = Facetrail(self.settings)
        self._images: dict[Path, LoadedImage] = {}

    @property
    def rule(self) -> str:
        return f"similarity >= {self.settings.compare_threshold:g}"

    def load(self, path: Path) -> LoadedImage:
        """Decoded once and kept: verification reuses each photo in many pairs."""
        if path not in self._images:
            self._images[path] = load_image(
                path,
                max_bytes=self.settings.max_image_bytes,
                max_pixels=self.settings.max_image_pixels,
            )
        return self._images[path]

    def compare(self, pair: Pair) -> PairOutcome:
        try:
            result = self.recognizer.compare_faces(
                self.load(pair.a), self.load(pair.b), threshold=0
            )
        except NoFaceError:
            return PairOutcome(None, None)
        if not result.matches:  # the target had no face
            return PairOutcome(None, None)
        best = max(match.similarity for match in result.matches)
        return PairOutcome(score=best, same=best >= self.settings.compare_threshold)

    def detect(self, path: Path) -> list[PixelBox]:
        image = self.load(path)
        return [
            PixelBox(
                left=face.box.left * image.width,
                top=face.box.top * image.height,
                width=face.box.width * image.width,
                height=face.box.height * image.height,
            )
            for face in self.recognizer.detect_faces(image)
        ]

    def identify(self, enroll: Sequence[Labelled], probes: Sequence[Path]) -> IdentifyOutcome:
        collection = "bench-identification"
        enrolled = self.api.enroll(collection, enroll_entries(enroll))
        report = self.api.identify(collection, [str(p) for p in probes])
        found = persons_by_image(report)
        outcomes = [found.get(str(p), ("failed", None)) for p in probes]
        return IdentifyOutcome(
            predictions=[person for _, person in outcomes],
            probes_without_face=sum(1 for outcome, _ in outcomes if outcome == "no face"),
            probes_failed=sum(1 for outcome, _ in outcomes if outcome == "failed"),
            enroll_failures=failed_items(enrolled),
            first_error=first_error(enrolled) or first_error(report),
        )
