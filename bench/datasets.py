"""The benchmark's photo sets, read in place from ``<repo>/../shared/data`` (never copied).

Reserved and left alone on purpose: dlib's ``examples/johns`` (calibration), dlib's
``examples/faces/training.xml`` (choosing detector settings) and face_recognition's
``knn_examples`` (scored by the tests).
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEEPFACE_UNIT = Path("deepface/tests/unit/dataset")
PAIR_FILES = ("master.csv", "face-recognition-pivot.csv")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})


@dataclass(frozen=True)
class Pair:
    """Two photos and whether they show the same person, as labelled by deepface."""

    a: Path
    b: Path
    same: bool


@dataclass(frozen=True)
class Labelled:
    path: Path
    label: str


@dataclass(frozen=True)
class IdentitySplit:
    """Photos to enroll (the first few per cluster by sorted file name) and held-out probes."""

    enroll: list[Labelled]
    probes: list[Labelled]
    clusters: int


@dataclass(frozen=True)
class PixelBox:
    left: float
    top: float
    width: float
    height: float

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)


@dataclass(frozen=True)
class BoxedImage:
    path: Path
    boxes: list[PixelBox]


def _decision_column(header: list[str]) -> str:
    for name in header:
        if name.strip().lower() == "decision":
            return name
    raise ValueError(f"no decision column in {header}")


def load_pairs(root: Path) -> tuple[list[Pair], int]:
    """Labelled pairs from both deepface files, deduplicated (as unordered pairs).

    Returns the unique pairs and the number of rows read. ``face-recognition-pivot.csv`` names
    files as ``deepface/tests/dataset/imgN.jpg`` (an older layout); only the file name is kept.
    """
    folder = root / DEEPFACE_UNIT
    seen: dict[frozenset[str], Pair] = {}
    rows = 0
    for filename in PAIR_FILES:
        with (folder / filename).open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            column = _decision_column(list(reader.fieldnames or []))
            for row in reader:
                rows += 1
                a = Path(row["file_x"].strip()).name
                b = Path(row["file_y"].strip()).name
                same = row[column].strip().lower() == "yes"
                key = frozenset((a, b))
                previous = seen.get(key)
                if previous is not None and previous.same != same:
                    raise ValueError(f"{a} / {b} is labelled both ways")
                seen.setdefault(key, Pair(folder / a, folder / b, same))
    return list(seen.values()), rows


def load_identities(root: Path) -> dict[str, list[Path]]:
    """deepface ``identities.csv``: cluster -> photos (lines starting with ``#`` are comments)."""
    clusters: dict[str, list[Path]] = defaultdict(list)
    base = root / "deepface"
    with (base / "identities.csv").open(newline="", encoding="utf-8") as fh:
        lines = [line for line in fh if not line.startswith("#")]
    for row in csv.DictReader(lines):
        clusters[row["identity_cluster"].strip()].append(base / row["file"].strip())
    return dict(clusters)


def load_celeba_identities(root: Path) -> dict[str, list[Path]]:
    """``celeba_identities/labels.csv``: CelebA identity number -> its uncropped photos."""
    clusters: dict[str, list[Path]] = defaultdict(list)
    base = root / "celeba_identities"
    with (base / "labels.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            clusters[row["identity"].strip()].append(base / row["path"].strip())
    return dict(clusters)


def load_glint_chips(root: Path) -> dict[str, list[Path]]:
    """``glint_celebrity_chips/labels.csv``: celebrity -> 10 aligned 112x112 chips. A calibration
    set: no benchmark scores it, so an operating point fitted here is kept apart from the probes."""
    clusters: dict[str, list[Path]] = defaultdict(list)
    base = root / "glint_celebrity_chips"
    with (base / "labels.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            clusters[row["identity"].strip()].append(base / row["path"].strip())
    return dict(clusters)


# Identification sets by name (``--dataset``): each maps a data root to cluster -> photos.
IDENTITY_SETS: dict[str, Callable[[Path], dict[str, list[Path]]]] = {
    "deepface": load_identities,
    "celeba": load_celeba_identities,
}


def open_set_split(
    root: Path,
    per_identity: int = 2,
    stranger_every: int = 3,
    rotation: int = 0,
    dataset: str = "deepface",
) -> tuple[IdentitySplit, frozenset[str]]:
    """Like ``identity_split``, but every ``stranger_every``-th cluster (sorted) is not enrolled:
    its photos are probes whose right answer is "unknown". ``rotation`` shifts both which
    clusters are strangers and which photos are enrolled (0: clusters 3, 6, 9, ... by position)."""
    identities = IDENTITY_SETS[dataset](root)
    clusters = sorted(identities)
    strangers = frozenset(
        c for i, c in enumerate(clusters) if i % stranger_every == (2 + rotation) % stranger_every
    )
    split = identity_split(root, per_identity, rotation, dataset)
    enroll = [e for e in split.enroll if e.label not in strangers]
    probes = [p for p in split.probes if p.label not in strangers] + [
        Labelled(p, c)
        for c in sorted(strangers)
        for p in sorted(identities[c], key=lambda p: p.name)
    ]
    return IdentitySplit(enroll, probes, len(clusters) - len(strangers)), strangers


def identity_split(
    root: Path, per_identity: int = 2, rotation: int = 0, dataset: str = "deepface"
) -> IdentitySplit:
    """Enroll ``per_identity`` consecutive photos of each cluster (plain sorted file names),
    starting at position ``rotation`` and wrapping around; the others are probes.

    Rotation 0 enrolls the first photos. A cluster with no more than ``per_identity`` photos is
    enrolled whole and has no probe; so is a cluster with no more than ``rotation`` photos (its
    windows have all been probed in earlier rotations), which then serves as a distractor only.
    """
    enroll: list[Labelled] = []
    probes: list[Labelled] = []
    clusters = IDENTITY_SETS[dataset](root)
    for label in sorted(clusters):
        photos = sorted(clusters[label], key=lambda p: p.name)
        chosen = {(rotation + j) % len(photos) for j in range(min(per_identity, len(photos)))}
        enroll += [Labelled(p, label) for i, p in enumerate(photos) if i in chosen]
        if rotation < len(photos):
            probes += [Labelled(p, label) for i, p in enumerate(photos) if i not in chosen]
    return IdentitySplit(enroll=enroll, probes=probes, clusters=len(clusters))


def load_detection_set(root: Path) -> list[BoxedImage]:
    """dlib ``examples/faces/testing.xml``; boxes are ``<box top left width height>`` pixels."""
    folder = root / "dlib" / "examples" / "faces"
    tree = ET.parse(folder / "testing.xml")
    images: list[BoxedImage] = []
    for image in tree.getroot().iter("image"):
        boxes = [
            PixelBox(
                left=float(box.attrib["left"]),
                top=float(box.attrib["top"]),
                width=float(box.attrib["width"]),
                height=float(box.attrib["height"]),
            )
            for box in image.iter("box")
        ]
        images.append(BoxedImage(folder / image.attrib["file"], boxes))
    return images


def throughput_images(root: Path) -> list[Path]:
    """Every deepface photo plus face_recognition's top-level ``examples`` photos."""
    deepface = root / "deepface" / "tests"
    examples = root / "face_recognition" / "examples"
    found = [p for p in deepface.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
    found += [p for p in examples.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found)
