"""facetrail's side: the local backend for compare/detect, the real job service for identify.

Everything runs against a private home (SQLite database in a temporary folder) with the user's
installed model files, and without a broker, so jobs run in this process.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.datasets import Labelled, Pair, PixelBox
from bench.systems import IdentifyOutcome, PairOutcome
from facetrail.api import Facetrail
from facetrail.backends import get_backend
from facetrail.backends.base import Backend
from facetrail.errors import InvalidImageError, NoFaceError
from facetrail.images import LoadedImage, open_image
from facetrail.images.scan import EnrollEntry
from facetrail.modelfiles import install_models
from facetrail.settings import Settings


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


@dataclass(frozen=True)
class ImageOutcome:
    """What an identify job said about one photo's largest face."""

    outcome: str  # "face", "no face" or "failed" (the item did not succeed)
    person: str | None = None  # named at the job's threshold
    ranked_first: str | None = None  # named, or else the top candidate


def outcomes_by_image(report: dict[str, Any]) -> dict[str, ImageOutcome]:
    """Job report -> {image source: outcome for its largest face}."""
    out: dict[str, ImageOutcome] = {}
    for image in report["images"]:
        source = str(image["image"])
        if image["status"] != "succeeded":
            out[source] = ImageOutcome("failed")
            continue
        face = largest_face(image["faces"])
        if face is None:
            out[source] = ImageOutcome("no face")
            continue
        candidates = face.get("candidates") or []
        top = candidates[0]["person"] if candidates else None
        out[source] = ImageOutcome("face", face["person"], face["person"] or top)
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
        self.recognizer: Backend = get_backend(self.settings)
        self.api = Facetrail(self.settings)
        self._images: dict[Path, LoadedImage] = {}
        self._runs = 0

    @property
    def version(self) -> str:
        return f"local backend, {self.recognizer.model_version}"

    @property
    def rule(self) -> str:
        return f"similarity >= {self.settings.compare_threshold:g}"

    def load(self, path: Path) -> LoadedImage:
        """Decoded once and kept: verification reuses each photo in many pairs."""
        if path not in self._images:
            self._images[path] = open_image(self.settings, str(path))
        return self._images[path]

    def compare(self, pair: Pair) -> PairOutcome:
        try:
            result = self.recognizer.compare_faces(
                self.load(pair.a), self.load(pair.b), threshold=0
            )
        except (NoFaceError, InvalidImageError):  # scored like a photo without a face
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
        self._runs += 1
        collection = f"bench-identification-{self._runs}"
        enrolled = self.api.enroll(collection, enroll_entries(enroll))
        report = self.api.identify(collection, [str(p) for p in probes])
        found = outcomes_by_image(report)
        outcomes = [found.get(str(p), ImageOutcome("failed")) for p in probes]
        return IdentifyOutcome(
            predictions=[o.person for o in outcomes],
            probes_without_face=sum(1 for o in outcomes if o.outcome == "no face"),
            ranked_first=[o.ranked_first for o in outcomes],
            probes_failed=sum(1 for o in outcomes if o.outcome == "failed"),
            enroll_failures=failed_items(enrolled),
            first_error=first_error(enrolled) or first_error(report),
        )
