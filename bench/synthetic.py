"""Synthetic face embeddings shaped like real ones, for collections too large to photograph.

Real embeddings are not uniform on the sphere: they crowd into a few dozen effective
dimensions and cluster by person. ``measure`` embeds the Glint360k celebrity chips
(``../shared/data/glint_celebrity_chips``, 24 identities x 10, which no test or other benchmark
scores) with the real local pipeline; ``Generator`` draws person centres from the Gaussian with
those embeddings' mean and covariance, and each face as its centre plus within-person noise
split so the same-person cosine mean matches the measured one. The different-person
distribution then follows from the covariance; both are printed beside the measured ones.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from facetrail.backends.local.pipeline import FacePipeline

Matrix = npt.NDArray[np.float32]
GLINT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glint_celebrity_chips"
# The chips are tight 112x112 crops: a black border gives the detector the context of a photo.
BORDER = 56


@dataclass(frozen=True)
class Distribution:
    same_mean: float
    same_std: float
    different_mean: float
    different_std: float

    def row(self) -> str:
        return (
            f"same-person cosine {self.same_mean:.3f} +- {self.same_std:.3f}, "
            f"different-person {self.different_mean:.3f} +- {self.different_std:.3f}"
        )


def pair_distribution(vectors: Matrix, labels: npt.NDArray[np.int64]) -> Distribution:
    cos = vectors @ vectors.T
    upper = np.triu_indices(len(vectors), 1)
    same = (labels[:, None] == labels[None, :])[upper]
    pairs = cos[upper]
    return Distribution(
        float(pairs[same].mean()),
        float(pairs[same].std()),
        float(pairs[~same].mean()),
        float(pairs[~same].std()),
    )


def measure(pipeline: FacePipeline, root: Path = GLINT) -> tuple[Matrix, npt.NDArray[np.int64]]:
    """Real embeddings of the labelled chips and their identity numbers."""
    vectors: list[Matrix] = []
    names: list[str] = []
    with (root / "labels.csv").open() as handle:
        for row in csv.DictReader(handle):
            chip = Image.open(root / row["path"]).convert("RGB")
            canvas = Image.new("RGB", (chip.width + 2 * BORDER, chip.height + 2 * BORDER))
            canvas.paste(chip, (BORDER, BORDER))
            rgb = np.asarray(canvas)
            detections = pipeline.detect(rgb)
            if detections:
                embedded, _ = pipeline.embed(rgb, detections[:1])
                vectors.append(embedded[0].astype(np.float32))
                names.append(row["identity"])
    ids = {name: i for i, name in enumerate(sorted(set(names)))}
    return np.stack(vectors), np.array([ids[n] for n in names], dtype=np.int64)


def _normalise(matrix: npt.NDArray[np.float64]) -> Matrix:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: Matrix = (matrix / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


@dataclass(frozen=True)
class Synthetic:
    vectors: Matrix  # (faces, dim) unit rows
    owner: npt.NDArray[np.int64]  # person number of each face
    centres: npt.NDArray[np.float64]  # (people, dim), before normalisation


class Generator:
    """Faces clustered by person with the measured same/different cosine distributions."""

    def __init__(self, real: Matrix, labels: npt.NDArray[np.int64], seed: int = 0) -> None:
        self.target = pair_distribution(real, labels)
        self.mean = real.mean(axis=0).astype(np.float64)
        # A square root of the covariance of the real embeddings (centres are drawn from it).
        centred = (real - real.mean(axis=0)).astype(np.float64)
        self.root = centred.T / np.sqrt(len(real) - 1)  # (dim, n): root @ root.T = covariance
        self.dim = real.shape[1]
        self.scale = float((self.root**2).sum() / self.dim)
        self.seed = seed
        self.shrink, self.spread = 0.0, 0.5
        for _ in range(2):
            self.spread = self._fit_spread()
            self.shrink = self._fit_shrink()
        self.spread = self._fit_spread()

    def _draw(self, rng: np.random.Generator, count: int) -> npt.NDArray[np.float64]:
        # 240 samples in 192 dimensions overstate the covariance's leading directions: shrink it
        # towards isotropic by ``self.shrink`` (fitted to the different-person spread).
        shaped = (self.root @ rng.standard_normal((self.root.shape[1], count))).T
        flat = rng.standard_normal((count, self.dim)) * np.sqrt(self.scale)
        drawn: npt.NDArray[np.float64] = shaped * np.sqrt(1 - self.shrink) + flat * np.sqrt(
            self.shrink
        )
        return drawn

    def _faces(
        self, people: int, per_person: npt.NDArray[np.int64], spread: float, seed: int
    ) -> Synthetic:
        rng = np.random.default_rng(seed)
        # Centres and noise share the real covariance, so every face has the real spread.
        centres = self.mean + self._draw(rng, people) * np.sqrt(1 - spread**2)
        owner = np.repeat(np.arange(people, dtype=np.int64), per_person)
        noise = self._draw(rng, len(owner)) * spread
        return Synthetic(_normalise(centres[owner] + noise), owner, centres)

    def _sample(self) -> Distribution:
        drawn = self._faces(200, np.full(200, 5, dtype=np.int64), self.spread, 1)
        return pair_distribution(drawn.vectors, drawn.owner)

    def _fit_spread(self) -> float:
        low, high = 0.0, 1.0
        for _ in range(16):
            self.spread = (low + high) / 2
            if self._sample().same_mean > self.target.same_mean:
                low = self.spread
            else:
                high = self.spread
        return (low + high) / 2

    def _fit_shrink(self) -> float:
        low, high = 0.0, 1.0
        for _ in range(16):
            self.shrink = (low + high) / 2
            if self._sample().different_std > self.target.different_std:
                low = self.shrink
            else:
                high = self.shrink
        return (low + high) / 2

    def faces(self, count: int, per_person: int = 10, seed: int | None = None) -> Synthetic:
        """``count`` unit vectors of ``count // per_person`` people (1 to 2*per_person-1 each)."""
        rng = np.random.default_rng(self.seed if seed is None else seed)
        people = max(1, count // per_person)
        sizes = rng.integers(1, 2 * per_person, size=people)
        sizes = np.maximum(1, np.round(sizes * count / sizes.sum())).astype(np.int64)
        sizes[-1] += count - int(sizes.sum())
        while sizes[-1] < 1:  # rounding pushed the last person below one face
            sizes[np.argmax(sizes)] -= 1
            sizes[-1] += 1
        return self._faces(people, sizes, self.spread, int(rng.integers(1 << 31)))

    def probes(self, drawn: Synthetic, count: int, seed: int = 7) -> Matrix:
        """New photos of people already in the collection: their centre plus fresh noise."""
        rng = np.random.default_rng(seed)
        people = rng.choice(len(drawn.centres), size=count, replace=False)
        noise = self._draw(rng, count) * self.spread
        return _normalise(drawn.centres[people] + noise)
