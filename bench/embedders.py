"""``python -m bench.embedders``: MobileFaceNet vs dlib's ResNet on deepface's photos.

Both embedders see the same MTCNN detections (largest face per photo) and the same protocol:

* verification: every pair of ``master.csv`` and ``face-recognition-pivot.csv``; ROC AUC of the
  cosine similarity, and accuracy of the shipped decision (calibrated similarity >= 80, the
  curve fitted on dlib's johns, never on these photos). The accuracy at the best threshold
  *for these very pairs* is printed too, marked as an oracle (optimistic by construction).
* identification: ``identities.csv``; per cluster the first 2 photos by sorted file name are
  enrolled, the rest identified against per-person mean embeddings (top-1).
* time: median detect and embed time per photo on a 1280x811 photo (img67.jpg).

Prints markdown tables (docs/models.md quotes a run). ``--variants`` adds ablations.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facetrail.backends.local.pipeline import FacePipeline
from facetrail.images import load_image
from facetrail.inference.detector import Detection
from facetrail.inference.embedders import (
    Embedder,
    MobileFaceNetEmbedder,
    MobileFaceNetFlipEmbedder,
)
from facetrail.modelfiles import model_path
from facetrail.settings import Settings

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEEPFACE = DATA / "deepface"
UNIT = DEEPFACE / "tests" / "unit" / "dataset"
PAIR_FILES = ("master.csv", "face-recognition-pivot.csv")
TIMING_PHOTO = UNIT / "img67.jpg"
FloatArray = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    same: bool


def log(message: str) -> None:
    print(f"[embedders] {message}", file=sys.stderr, flush=True)


def load_pairs(filename: str) -> list[Pair]:
    with (UNIT / filename).open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    column = next(k for k in rows[0] if k.strip().lower() == "decision")
    # The pivot file names files by an older layout (deepface/tests/dataset/imgN.jpg).
    return [
        Pair(Path(r["file_x"]).name, Path(r["file_y"]).name, r[column].strip() == "Yes")
        for r in rows
    ]


def load_identities() -> dict[str, list[str]]:
    with (DEEPFACE / "identities.csv").open(newline="", encoding="utf-8") as fh:
        lines = [line for line in fh if not line.startswith("#")]
    clusters: dict[str, list[str]] = defaultdict(list)
    for row in csv.DictReader(lines):
        clusters[row["identity_cluster"]].append(Path(row["file"]).name)
    return {k: sorted(v) for k, v in sorted(clusters.items())}


def read_rgb(path: Path) -> UInt8Array:
    image = load_image(path, max_bytes=64 << 20, max_pixels=60_000_000)
    return np.asarray(image.pixels, np.uint8)


def roc_auc(scores: Sequence[float], truths: Sequence[bool]) -> float:
    """Probability that a random same pair outscores a random different one (ties count 1/2)."""
    pos = np.array([s for s, t in zip(scores, truths, strict=True) if t])
    neg = np.array([s for s, t in zip(scores, truths, strict=True) if not t])
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def best_accuracy(scores: Sequence[float], truths: Sequence[bool]) -> float:
    s, t = np.asarray(scores), np.asarray(truths)
    cuts = np.concatenate([[-np.inf], np.sort(s)])
    return float(max(((s > c) == t).mean() for c in cuts))


class Embeddings:
    """Detect once per photo (largest face), embed with each embedder, cache both."""

    def __init__(self, pipeline: FacePipeline) -> None:
        self.pipeline = pipeline
        self._faces: dict[str, tuple[UInt8Array, Detection] | None] = {}

    def largest(self, name: str) -> tuple[UInt8Array, Detection] | None:
        if name not in self._faces:
            rgb = read_rgb(UNIT / name)
            faces = self.pipeline.detect(rgb)
            self._faces[name] = (rgb, faces[0]) if faces else None
            if not faces:
                log(f"no face in {name}")
        return self._faces[name]

    def vectors(self, embedder: Embedder, names: Sequence[str]) -> dict[str, FloatArray]:
        out: dict[str, FloatArray] = {}
        for name in sorted(set(names)):
            found = self.largest(name)
            if found is not None:
                rgb, face = found
                vectors, _ = embedder.predict(rgb, [face])
                out[name] = vectors[0]
        return out


def verification(
    calibrated: FacePipeline, vectors: dict[str, FloatArray], pairs: list[Pair]
) -> dict[str, float]:
    scored = [
        (p, float(vectors[p.a] @ vectors[p.b])) for p in pairs if p.a in vectors and p.b in vectors
    ]
    cos = [c for _, c in scored]
    truth = [p.same for p, _ in scored]
    # A pair whose photo has no face counts as a "different" decision (what compare would do).
    decided = {(p.a, p.b): float(calibrated.similarity(c)) >= 80.0 for p, c in scored}
    accept = np.array([decided.get((p.a, p.b), False) for p in pairs])
    same = np.array([p.same for p in pairs])
    return {
        "pairs": len(pairs),
        "same": int(same.sum()),
        "auc": roc_auc(cos, truth),
        "acc80": float((accept == same).mean()),
        "far80": float(accept[~same].mean()),
        "frr80": float((~accept[same]).mean()),
        "oracle": best_accuracy(cos, truth),
    }


def identification(
    vectors: dict[str, FloatArray], clusters: dict[str, list[str]]
) -> dict[str, float]:
    means, probes = {}, []
    for label, names in clusters.items():
        enrolled = [vectors[n] for n in names[:2] if n in vectors]
        if enrolled:
            mean = np.mean(enrolled, axis=0)
            means[label] = mean / np.linalg.norm(mean)
        probes += [(n, label) for n in names[2:]]
    labels = sorted(means)
    matrix = np.stack([means[k] for k in labels])
    right = sum(
        1
        for n, label in probes
        if n in vectors and labels[int(np.argmax(matrix @ vectors[n]))] == label
    )
    return {"probes": len(probes), "right": right, "top1": right / len(probes)}


def timing(pipeline: FacePipeline, embedder: Embedder, repeats: int) -> dict[str, float]:
    rgb = read_rgb(TIMING_PHOTO)
    faces = pipeline.detect(rgb)
    embedder.predict(rgb, faces)  # warm-up (loads the model)
    detect, embed = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        faces = pipeline.detect(rgb)
        t1 = time.perf_counter()
        embedder.predict(rgb, faces)
        t2 = time.perf_counter()
        detect.append(t1 - t0)
        embed.append(t2 - t1)
    return {
        "faces": len(faces),
        "detect_ms": statistics.median(detect) * 1000,
        "embed_ms": statistics.median(embed) * 1000,
    }


def baseline_timing(repeats: int) -> float | None:
    """face_recognition (HOG, 1 upsample, 128-d encodings) on the same photo, if installed."""
    try:
        import face_recognition
    except ImportError:
        return None
    rgb = read_rgb(TIMING_PHOTO)
    runs = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        face_recognition.face_encodings(rgb, face_recognition.face_locations(rgb))
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs[1:]) * 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.embedders", description=__doc__)
    parser.add_argument("--repeats", type=int, default=7, help="timing repetitions")
    parser.add_argument("--variants", action="store_true", help="also MobileFaceNet with flip")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    pipeline = FacePipeline(settings)
    cache = Embeddings(pipeline)
    pairs = {name: load_pairs(name) for name in PAIR_FILES}
    clusters = load_identities()
    names = {n for ps in pairs.values() for p in ps for n in (p.a, p.b)}
    names |= {n for ns in clusters.values() for n in ns}

    systems: list[tuple[str, FacePipeline, Embedder]] = []
    for name in ("mobilefacenet", "dlib"):
        calibrated = FacePipeline(settings.with_(embedder=name))
        systems.append((name, calibrated, calibrated.embedder))
    if args.variants:
        calibrated = FacePipeline(settings.with_(embedder="mobilefacenet"))
        files = [model_path(settings, name) for name in MobileFaceNetEmbedder.weights]
        flipped = MobileFaceNetFlipEmbedder.shared(files, threads=settings.threads)
        systems.append(("mobilefacenet + flip", calibrated, flipped))

    print(
        "| embedder | pairs file | pairs (same) | ROC AUC | accuracy at 80 | false accept "
        "| false reject | oracle accuracy |"
    )
    print("|---|---|---|---|---|---|---|---|")
    ident_rows, time_rows = [], []
    for label, calibrated, embedder in systems:
        log(f"embedding with {label}")
        vectors = cache.vectors(embedder, sorted(names))
        for filename, ps in pairs.items():
            v = verification(calibrated, vectors, ps)
            print(
                f"| {label} | {filename} | {v['pairs']:.0f} ({v['same']:.0f}) | {v['auc']:.4f} "
                f"| {v['acc80']:.3f} | {v['far80']:.3f} | {v['frr80']:.3f} | {v['oracle']:.3f} |"
            )
        ident_rows.append((label, identification(vectors, clusters)))
        time_rows.append((label, timing(pipeline, embedder, args.repeats)))
    print()
    print("| embedder | identification top-1 | probes right |")
    print("|---|---|---|")
    for label, i in ident_rows:
        print(f"| {label} | {i['top1']:.3f} | {i['right']:.0f}/{i['probes']:.0f} |")
    print()
    print(f"Timing on {TIMING_PHOTO.name} (median of {args.repeats}, threads={settings.threads}):")
    print()
    print("| embedder | faces | detect ms | embed ms | total ms |")
    print("|---|---|---|---|---|")
    for label, t in time_rows:
        total = t["detect_ms"] + t["embed_ms"]
        print(
            f"| {label} | {t['faces']:.0f} | {t['detect_ms']:.0f} | {t['embed_ms']:.0f} "
            f"| {total:.0f} |"
        )
    base = baseline_timing(min(args.repeats, 5))
    if base is not None:
        print(f"| face_recognition (HOG x1 upsample + ResNet) | - | - | - | {base:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
