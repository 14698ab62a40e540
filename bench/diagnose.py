"""``python -m bench.diagnose``: why identification misses on a hard set, and what would help.

Runs facetrail's local pipeline once over every photo of an identification set
(``--dataset celeba`` by default: ``celeba_identities``), keeps the largest face's detection,
pose, size, sharpness and four embeddings (MobileFaceNet; with flip test-time augmentation; with
flip on a crop aligned by five points taken from MediaPipe's face mesh instead of MTCNN's; dlib's
128-d), and then replays the identify rule offline (person template = the
normalised mean of the enrolled vectors, calibrated 0-100 similarity, named at >= 80):

1. diagnosis of the current default: rank-1 without a threshold, the same-person and
   best-other-person similarity distributions, and where the unknowns fall;
2. candidate changes side by side against the default on the same probes.

Nothing is fitted on the probes it scores: the people are split into two halves (sorted identity
numbers, even and odd positions); whatever a candidate fits (a curve, a threshold) is fitted on
one half's photos and scores only the other half's probes, and the two halves' counts are summed
(cross-fitting), with each half's gallery holding that half's people. The baseline
(face_recognition's own encodings and rule) is replayed on the same halves. The split protocol
(first k photos by file name enrolled, every third person a stranger) is ``bench.datasets``'s.

Some candidates set their operating point on strangers from another set: the 240 Glint360k chips
of ``glint_celebrity_chips`` (24 people, scored by no benchmark), analysed the same way. Those fit
nothing on the scored set, so they are also scored on the benchmark's own splits (all people), and
an oracle table bounds what any single threshold could reach with each candidate's ranking.
``--rounds N`` sums the all-people table over ``bench.crossval``'s first N rotations (deepface: 8).
``--cache FILE`` keeps the per-photo analysis and the baseline's encodings (about 25 minutes on
2 shared cores for celeba) for reruns.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench import datasets
from bench.calibrate import fit, pair_scores
from bench.facetrail_side import bench_settings
from bench.metrics import BASELINE_TOLERANCE
from facetrail.backends.local.attributes import estimate_pose, estimate_quality
from facetrail.backends.local.pipeline import FacePipeline
from facetrail.images import open_image
from facetrail.inference.detector import Detection
from facetrail.inference.embedders import (
    DlibEmbedder,
    MobileFaceNetEmbedder,
    MobileFaceNetFlipEmbedder,
)
from facetrail.modelfiles import model_path

FloatArray = npt.NDArray[np.float64]
Vec = npt.NDArray[np.float32]
THRESHOLD = 80.0
KINDS = ("mfn", "mfn_flip", "mfn_mesh_flip", "dlib")
# MediaPipe face-mesh points (canonical order) whose means give the five ArcFace points: the
# image-left and image-right eye contours, the nose tip, the image-left and right mouth corners.
MESH_FIVE = ((33, 133, 159, 145), (362, 263, 386, 374), (1,), (61,), (291,))


def mesh_five_points(points: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(468, 2) mesh points -> (5, 2) alignment points in MTCNN's order."""
    return np.stack([points[list(group)].mean(axis=0) for group in MESH_FIVE]).astype(np.float32)


def log(message: str) -> None:
    print(f"[diagnose] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Photo:
    """The largest face of one photo (``vectors`` empty when no face was found)."""

    path: Path
    label: str
    vectors: dict[str, Vec]
    yaw: float = 0.0
    height_px: float = 0.0
    sharpness: float = 0.0
    baseline_done: bool = False  # ``vectors["baseline"]``: face_recognition's largest face


def with_baseline(photo: Photo) -> Photo:
    """``photo`` plus face_recognition's encoding of its largest face (if it finds one)."""
    # The baseline library is installed by `./dev bench` only: imported where it runs.
    from bench.baseline import analyse as baseline_faces

    faces = baseline_faces(photo.path)
    index = faces.largest()
    vectors = dict(photo.vectors)
    if index is not None:
        vectors["baseline"] = np.asarray(faces.encodings[index], np.float32)
    return replace(photo, vectors=vectors, baseline_done=True)


def analyse(paths: Sequence[datasets.Labelled], home: Path) -> list[Photo]:
    settings = bench_settings(home)
    pipeline = FacePipeline(settings)
    mfn_files = [model_path(settings, n) for n in MobileFaceNetEmbedder.weights]
    embedders = {
        "mfn": MobileFaceNetEmbedder.shared(mfn_files, threads=settings.threads),
        "mfn_flip": MobileFaceNetFlipEmbedder.shared(mfn_files, threads=settings.threads),
        "dlib": DlibEmbedder.shared(
            [model_path(settings, n) for n in DlibEmbedder.weights], threads=settings.threads
        ),
    }
    mesh = pipeline.face_mesh_model
    photos: list[Photo] = []
    for n, item in enumerate(paths):
        if n % 50 == 0:
            log(f"{n}/{len(paths)} photos")
        rgb = np.asarray(open_image(settings, str(item.path)).pixels, np.uint8)
        found = pipeline.detect(rgb)
        if not found:
            photos.append(Photo(item.path, item.label, {}))
            continue
        face = max(found, key=lambda d: float((d.box[2] - d.box[0]) * (d.box[3] - d.box[1])))
        vectors = {kind: model.predict(rgb, [face])[0][0] for kind, model in embedders.items()}
        five = mesh_five_points(mesh.predict(rgb, [face])[0])
        meshed = Detection(box=face.box, score=face.score, landmarks=five)
        vectors["mfn_mesh_flip"] = embedders["mfn_flip"].predict(rgb, [meshed])[0][0]
        photos.append(
            Photo(
                item.path,
                item.label,
                vectors,
                yaw=estimate_pose(face.landmarks).yaw,
                height_px=float(face.box[3] - face.box[1]),
                sharpness=estimate_quality(rgb, face.box).sharpness,
            )
        )
    return photos


# A scorer turns (probe photo, enrolled photos of one person) into a 0-100 similarity.
Scorer = Callable[[Photo, Sequence[Photo]], float]


def template(vectors: Sequence[Vec], weights: Sequence[float] | None = None) -> Vec:
    w = np.ones(len(vectors)) if weights is None else np.asarray(weights, np.float64)
    mean = np.asarray((np.stack(vectors) * w[:, None]).sum(axis=0), np.float32)
    return np.asarray(mean / max(float(np.linalg.norm(mean)), 1e-12), np.float32)


def cosine_scorer(
    kinds: Sequence[str],
    curve: tuple[float, float],
    weight: Callable[[Photo], float] | None = None,
) -> Scorer:
    """Mean over ``kinds`` of the cosine to each kind's person template, through ``curve``."""

    def score(probe: Photo, enrolled: Sequence[Photo]) -> float:
        cos = 0.0
        for kind in kinds:
            weights = None if weight is None else [weight(p) for p in enrolled]
            cos += float(
                probe.vectors[kind] @ template([p.vectors[kind] for p in enrolled], weights)
            )
        return float(logistic(curve, cos / len(kinds)))

    return score


def nearest_scorer(kind: str, curve: tuple[float, float]) -> Scorer:
    """The best cosine to any one enrolled photo (no template), through ``curve``."""

    def score(probe: Photo, enrolled: Sequence[Photo]) -> float:
        return float(
            logistic(curve, max(float(probe.vectors[kind] @ p.vectors[kind]) for p in enrolled))
        )

    return score


def logistic(curve: tuple[float, float], cos: float | FloatArray) -> FloatArray:
    z = curve[0] * np.asarray(cos, np.float64) + curve[1]
    return np.asarray(100.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0))), np.float64)


@dataclass
class Counts:
    right: int = 0
    wrong: int = 0
    unknown: int = 0
    no_face: int = 0
    rank1: int = 0
    enrolled_probes: int = 0

    def add(self, other: Counts) -> None:
        for name in ("right", "wrong", "unknown", "no_face", "rank1", "enrolled_probes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def cell(self) -> str:
        total = self.right + self.wrong + self.unknown
        return (
            f"{self.right}/{total} = {self.right / max(total, 1):.1%}, {self.wrong} wrong, "
            f"{self.unknown} unknown ({self.no_face} no face)"
        )


@dataclass(frozen=True)
class Decision:
    probe: Photo
    truth: str | None
    named: str | None
    first: str | None
    true_score: float | None  # similarity to the true person's template (enrolled probes)
    other_score: float | None  # best similarity to anyone else


def decide(
    photos: dict[Path, Photo],
    split: datasets.IdentitySplit,
    strangers: frozenset[str],
    scorer: Scorer,
    needs: str = "mfn",
) -> list[Decision]:
    people: dict[str, list[Photo]] = {}
    for item in split.enroll:
        photo = photos[item.path]
        if needs in photo.vectors:
            people.setdefault(item.label, []).append(photo)
    out: list[Decision] = []
    for item in split.probes:
        probe = photos[item.path]
        truth = None if item.label in strangers else item.label
        if needs not in probe.vectors:
            out.append(Decision(probe, truth, None, None, None, None))
            continue
        scores = {person: scorer(probe, enrolled) for person, enrolled in people.items()}
        first = max(scores, key=lambda p: scores[p])
        others = [s for p, s in scores.items() if p != truth]
        out.append(
            Decision(
                probe,
                truth,
                first if scores[first] >= THRESHOLD else None,
                first,
                scores.get(truth) if truth else None,
                max(others) if others else None,
            )
        )
    return out


def count(decisions: Sequence[Decision]) -> Counts:
    c = Counts()
    for d in decisions:
        c.no_face += d.first is None
        if d.named == d.truth:
            c.right += 1
        elif d.named is None:
            c.unknown += 1
        else:
            c.wrong += 1
        if d.truth is not None:
            c.enrolled_probes += 1
            c.rank1 += d.first == d.truth
    return c


def restrict(split: datasets.IdentitySplit, keep: frozenset[str]) -> datasets.IdentitySplit:
    return datasets.IdentitySplit(
        [e for e in split.enroll if e.label in keep],
        [p for p in split.probes if p.label in keep],
        len(keep),
    )


def splits(
    root: Path, dataset: str, k: int, keep: frozenset[str], rotation: int = 0
) -> dict[str, tuple[datasets.IdentitySplit, frozenset[str]]]:
    closed = restrict(datasets.identity_split(root, k, rotation, dataset), keep)
    opened, strangers = datasets.open_set_split(root, k, rotation=rotation, dataset=dataset)
    return {"closed": (closed, frozenset()), "open": (restrict(opened, keep), strangers & keep)}


def percentiles(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    p = np.percentile(np.asarray(values), [5, 25, 50, 75, 95])
    return " / ".join(f"{v:.1f}" for v in p)


def diagnosis(decisions: Sequence[Decision], enrolled_yaw: dict[str, list[float]]) -> list[str]:
    lines = []
    enrolled = [d for d in decisions if d.truth is not None and d.first is not None]
    same = [d.true_score for d in enrolled if d.true_score is not None]
    other = [d.other_score for d in enrolled if d.other_score is not None]
    lines.append(
        f"- same person (probe vs own template), similarity p5/p25/p50/p75/p95: "
        f"{percentiles(same)}; below {THRESHOLD:g}: {sum(s < THRESHOLD for s in same)} of "
        f"{len(same)}"
    )
    lines.append(
        f"- best other person, p5/p25/p50/p75/p95: {percentiles(other)}; at or above "
        f"{THRESHOLD:g}: {sum(s >= THRESHOLD for s in other)} of {len(other)}"
    )
    groups = {
        "right": [d for d in enrolled if d.named == d.truth],
        "unknown, ranked right": [d for d in enrolled if d.named is None and d.first == d.truth],
        "unknown, ranked wrong": [d for d in enrolled if d.named is None and d.first != d.truth],
        "wrong name": [d for d in enrolled if d.named not in (None, d.truth)],
    }
    lines.append("")
    lines.append(
        "| probes (enrolled people) | n | median abs yaw | abs yaw > 30 | median face height px "
        "| height < 80 px | median sharpness | median yaw gap to enrolled |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for name, group in groups.items():
        if not group:
            lines.append(f"| {name} | 0 | | | | | | |")
            continue
        yaw = np.abs([d.probe.yaw for d in group])
        height = np.asarray([d.probe.height_px for d in group])
        sharp = np.asarray([d.probe.sharpness for d in group])
        gap = [min(abs(d.probe.yaw - y) for y in enrolled_yaw[d.truth or ""]) for d in group]
        lines.append(
            f"| {name} | {len(group)} | {np.median(yaw):.0f} | {np.mean(yaw > 30):.0%} | "
            f"{np.median(height):.0f} | {np.mean(height < 80):.0%} | {np.median(sharp):.1f} | "
            f"{np.median(gap):.0f} |"
        )
    return lines


def oracle(decisions: Sequence[Decision], max_wrong: int) -> tuple[int, float]:
    """Most probes right at any one threshold with at most ``max_wrong`` wrong names, and that
    threshold (in the scorer's units). A bound that looks at the scored probes, never a setting."""
    tops = sorted(
        {
            max(s for s in (d.true_score, d.other_score) if s is not None)
            for d in decisions
            if d.first is not None
        }
    )
    best = (0, float("nan"))
    for t in tops:
        named = [
            d.first
            if d.first is not None
            and max(s for s in (d.true_score, d.other_score) if s is not None) >= t
            else None
            for d in decisions
        ]
        right = sum(n == d.truth for n, d in zip(named, decisions, strict=True))
        wrong = sum(n not in (None, d.truth) for n, d in zip(named, decisions, strict=True))
        if wrong <= max_wrong and right > best[0]:
            best = (right, t)
    return best


def fit_curve(photos: Sequence[Photo], kinds: Sequence[str]) -> tuple[float, float]:
    """Platt curve on all same/different pairs of ``photos`` for the mean cosine of ``kinds``."""
    usable = [p for p in photos if "mfn" in p.vectors]
    labels = [p.label for p in usable]
    cos = np.zeros(0)
    same = np.zeros(0)
    for kind in kinds:
        c, s = pair_scores(np.stack([p.vectors[kind] for p in usable]), labels)
        cos = c if not len(cos) else cos + c
        same = s
    return fit(cos / len(kinds), same)


def stranger_curve(
    photos: Sequence[Photo],
    kinds: Sequence[str],
    curve: tuple[float, float],
    per_identity: int = 2,
    nearest: bool = False,
) -> tuple[float, float]:
    """``curve`` shifted so 80 falls where 1 % of strangers would be named: the 99th percentile
    of each held-out photo's best cosine to another person (their template, or with ``nearest``
    their nearest photo; the first ``per_identity`` photos of each person of ``photos``
    enrolled, the rest held out)."""

    def cosine(probe: Photo, enrolled: Sequence[Photo]) -> float:
        per_kind = [
            max(float(probe.vectors[k] @ p.vectors[k]) for p in enrolled)
            if nearest
            else float(probe.vectors[k] @ template([p.vectors[k] for p in enrolled]))
            for k in kinds
        ]
        return float(np.mean(per_kind))

    threshold = stranger_threshold(photos, cosine, per_identity)
    return curve[0], float(np.log(4.0) - curve[0] * threshold)


def quality_weight(photo: Photo) -> float:
    """Frontal, large faces count more in a template (cos of yaw, face height up to 112 px)."""
    frontal = max(0.2, float(np.cos(np.radians(min(abs(photo.yaw), 80.0)))))
    return frontal * min(1.0, max(0.3, photo.height_px / 112.0))


MFN = MobileFaceNetEmbedder.calibration
# Each kind's shipped pair curve (cosine -> log-odds of "same person").
CURVES = {
    "mfn": MFN,
    "mfn_flip": MFN,
    "mfn_mesh_flip": MFN,
    "dlib": DlibEmbedder.calibration,
}
# A raw score for a probe against a person (log-odds or a cosine; higher is more alike).
Raw = Callable[[Photo, Sequence[Photo]], float]
# A candidate's scorer from (photos of the scored set it may be fitted on, calibration chips).
Factory = Callable[[Sequence[Photo], Sequence[Photo]], Scorer]


def log_odds(kinds: Sequence[str], mix_nearest: bool = False) -> Raw:
    """Sum over ``kinds`` of each kind's shipped log-odds for the cosine to the person's template
    (``mix_nearest``: the mean of that cosine and the best cosine to any one enrolled photo).
    Summing calibrated log-odds is how independent evidence adds up; one kind is its own curve."""

    def raw(probe: Photo, enrolled: Sequence[Photo]) -> float:
        total = 0.0
        for kind in kinds:
            vectors = [p.vectors[kind] for p in enrolled]
            cos = float(probe.vectors[kind] @ template(vectors))
            if mix_nearest:
                cos = (cos + max(float(probe.vectors[kind] @ v) for v in vectors)) / 2
            a, b = CURVES[kind]
            total += a * cos + b
        return total

    return raw


def stranger_threshold(photos: Sequence[Photo], raw: Raw, per_identity: int = 2) -> float:
    """The raw score that 1 % of strangers reach: the 99th percentile, over the held-out photos of
    ``photos`` (each person's first ``per_identity`` by file name enrolled), of the best raw score
    against any other person."""
    people: dict[str, list[Photo]] = {}
    for photo in sorted((p for p in photos if "mfn" in p.vectors), key=lambda p: p.path.name):
        people.setdefault(photo.label, []).append(photo)
    best_other = [
        max(raw(probe, people[other][:per_identity]) for other in people if other != label)
        for label, group in people.items()
        for probe in group[per_identity:]
    ]
    return float(np.percentile(best_other, 99))


def on_strangers(raw: Raw, photos: Sequence[Photo]) -> Scorer:
    """``raw`` as 0-100, shifted so 80 (log-odds log 4) falls where 1 % of ``photos``' strangers
    would be named."""
    shift = float(np.log(4.0)) - stranger_threshold(photos, raw)
    return lambda probe, enrolled: float(logistic((1.0, shift), raw(probe, enrolled)))


def as_similarity(raw: Raw) -> Scorer:
    return lambda probe, enrolled: float(logistic((1.0, 0.0), raw(probe, enrolled)))


def baseline_scorer(probe: Photo, enrolled: Sequence[Photo]) -> float:
    """face_recognition's rule on 0-100: nearest enrolled encoding, named at distance <= 0.6
    (mapped so that distance 0.6 lands on 80 and nearer is higher)."""
    distance = min(
        float(np.linalg.norm(probe.vectors["baseline"] - p.vectors["baseline"])) for p in enrolled
    )
    return 80.0 + 100.0 * (BASELINE_TOLERANCE - distance)


# (name, the vector each photo needs, scorer from the photos it may be fitted on)
CANDIDATES: list[tuple[str, str, Factory]] = [
    (
        "baseline: face_recognition (dlib HOG), distance <= 0.6",
        "baseline",
        lambda _, __: baseline_scorer,
    ),
    ("default: mfn, shipped curve", "mfn", lambda _, __: cosine_scorer(["mfn"], MFN)),
    ("mfn flip, shipped curve", "mfn", lambda _, __: cosine_scorer(["mfn_flip"], MFN)),
    (
        "mfn, quality-weighted templates",
        "mfn",
        lambda _, __: cosine_scorer(["mfn"], MFN, quality_weight),
    ),
    ("mfn, nearest enrolled photo", "mfn", lambda _, __: nearest_scorer("mfn", MFN)),
    ("mfn flip, nearest enrolled photo", "mfn", lambda _, __: nearest_scorer("mfn_flip", MFN)),
    (
        "mfn, nearest enrolled photo, 80 at 1% strangers named",
        "mfn",
        lambda fit_on, _: nearest_scorer("mfn", stranger_curve(fit_on, ["mfn"], MFN, nearest=True)),
    ),
    (
        "mfn+dlib fused, Platt curve fitted",
        "mfn",
        lambda fit_on, _: cosine_scorer(["mfn", "dlib"], fit_curve(fit_on, ["mfn", "dlib"])),
    ),
    (
        "mfn, Platt curve fitted",
        "mfn",
        lambda fit_on, _: cosine_scorer(["mfn"], fit_curve(fit_on, ["mfn"])),
    ),
    (
        "mfn, 80 at 1% strangers named",
        "mfn",
        lambda fit_on, _: cosine_scorer(["mfn"], stranger_curve(fit_on, ["mfn"], MFN)),
    ),
    (
        "mfn flip, 80 at 1% strangers named",
        "mfn",
        lambda fit_on, _: cosine_scorer(["mfn_flip"], stranger_curve(fit_on, ["mfn_flip"], MFN)),
    ),
    (
        "mfn flip+dlib fused, 80 at 1% strangers named",
        "mfn",
        lambda fit_on, _: cosine_scorer(
            ["mfn_flip", "dlib"],
            stranger_curve(fit_on, ["mfn_flip", "dlib"], fit_curve(fit_on, ["mfn_flip", "dlib"])),
        ),
    ),
    (
        "mfn flip, quality-weighted, 80 at 1% strangers named",
        "mfn",
        lambda fit_on, _: cosine_scorer(
            ["mfn_flip"], stranger_curve(fit_on, ["mfn_flip"], MFN), quality_weight
        ),
    ),
]


GLINT = "80 at 1% of glint chips' strangers named"
CANDIDATES += [
    (
        "mfn flip, mesh-aligned, shipped curve",
        "mfn",
        lambda _, __: cosine_scorer(["mfn_mesh_flip"], MFN),
    ),
    (
        "mfn flip+dlib, summed log-odds (shipped curves)",
        "mfn",
        lambda _, __: as_similarity(log_odds(["mfn_flip", "dlib"])),
    ),
    (f"mfn, {GLINT}", "mfn", lambda _, glint: on_strangers(log_odds(["mfn"]), glint)),
    (
        f"mfn, template and nearest photo mean, {GLINT}",
        "mfn",
        lambda _, glint: on_strangers(log_odds(["mfn"], mix_nearest=True), glint),
    ),
    (f"mfn flip, {GLINT}", "mfn", lambda _, glint: on_strangers(log_odds(["mfn_flip"]), glint)),
    (
        f"mfn flip, template and nearest photo mean, {GLINT}",
        "mfn",
        lambda _, glint: on_strangers(log_odds(["mfn_flip"], mix_nearest=True), glint),
    ),
    (
        f"mfn flip, mesh-aligned, {GLINT}",
        "mfn",
        lambda _, glint: on_strangers(log_odds(["mfn_mesh_flip"]), glint),
    ),
    (
        f"mfn flip+dlib, summed log-odds, {GLINT}",
        "mfn",
        lambda _, glint: on_strangers(log_odds(["mfn_flip", "dlib"]), glint),
    ),
]


# Candidates with nothing fitted on this set (shipped curves, fixed rules, or an operating point
# set on the glint chips).
UNFITTED = frozenset(
    {
        *(name for name, _, _ in CANDIDATES[-8:]),
        "baseline: face_recognition (dlib HOG), distance <= 0.6",
        "default: mfn, shipped curve",
        "mfn flip, shipped curve",
        "mfn, quality-weighted templates",
        "mfn, nearest enrolled photo",
        "mfn flip, nearest enrolled photo",
    }
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.diagnose", description=__doc__)
    parser.add_argument("--data", type=Path, default=datasets.DEFAULT_ROOT)
    parser.add_argument("--dataset", choices=sorted(datasets.IDENTITY_SETS), default="celeba")
    parser.add_argument(
        "--cache", type=Path, default=None, help="keep the per-photo analysis in this file"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rotations of bench.crossval summed in the all-people table (deepface: 8)",
    )
    args = parser.parse_args(argv)
    identities = datasets.IDENTITY_SETS[args.dataset](args.data)
    every = [datasets.Labelled(p, label) for label in sorted(identities) for p in identities[label]]
    glint_sets = datasets.load_glint_chips(args.data)
    chips = [datasets.Labelled(p, label) for label in sorted(glint_sets) for p in glint_sets[label]]
    cached = pickle.loads(args.cache.read_bytes()) if args.cache and args.cache.exists() else {}
    if not isinstance(cached, dict) or cached.get("kinds") != KINDS:
        cached = {}  # an older cache without every kind: analyse again
    with tempfile.TemporaryDirectory(prefix="facetrail-diagnose-") as home:
        if "photos" not in cached:
            cached = {"kinds": KINDS, "photos": analyse(every, Path(home))}
        if "glint" not in cached:
            log("the glint chips (calibration only)")
            cached["glint"] = analyse(chips, Path(home))
    if args.cache is not None:
        args.cache.write_bytes(pickle.dumps(cached))
    photos = {p.path: p for p in cached["photos"]}
    glint: list[Photo] = cached["glint"]
    if not all(p.baseline_done for p in photos.values()):
        log("face_recognition on every photo")
        photos = {path: with_baseline(p) for path, p in photos.items()}
        cached["photos"] = list(photos.values())
        if args.cache is not None:
            args.cache.write_bytes(pickle.dumps(cached))
    names = sorted(identities)
    print(
        f"{args.dataset}: {len(photos)} photos of {len(names)} people; "
        f"no face found in {sum('mfn' not in p.vectors for p in photos.values())}"
    )
    print()
    print("## Diagnosis of the default (MobileFaceNet, shipped curve, >= 80), all people")
    default = cosine_scorer(["mfn"], MobileFaceNetEmbedder.calibration)
    for k in (1, 2):
        split = datasets.identity_split(args.data, k, dataset=args.dataset)
        yaw = {
            label: [photos[e.path].yaw for e in split.enroll if e.label == label] or [0.0]
            for label in names
        }
        decisions = decide(photos, split, frozenset(), default)
        c = count(decisions)
        print()
        print(
            f"### {k} enrolled, closed set: {c.cell()}; rank-1 without a threshold "
            f"{c.rank1}/{c.enrolled_probes} = {c.rank1 / c.enrolled_probes:.1%}"
        )
        for line in diagnosis(decisions, yaw):
            print(line)
        for kind in ("mfn", "mfn_flip"):
            raw = decide(photos, split, frozenset(), cosine_scorer([kind], (1.0, 0.0)))
            right, at = oracle(raw, max_wrong=2)
            cos = float(np.log(at / (100.0 - at)))  # the inverse of the slope-1 curve
            print(
                f"- oracle bound ({kind}, not a setting: it looks at the scored probes): at most "
                f"{right} right with at most 2 wrong names, at cosine {cos:.3f}"
            )

    halves = (frozenset(names[0::2]), frozenset(names[1::2]))
    print()
    print(
        "## Candidates against the default, each half of the people scored with what was fitted "
        "on the other half (sums of both halves; galleries hold one half's people)"
    )
    print()
    print("| candidate | k | closed set | rank-1 | open set |")
    print("|---|---|---|---|---|")
    for name, needs, factory in CANDIDATES:
        for k in (1, 2):
            closed, opened = Counts(), Counts()
            for fitted_on, scored in (halves, halves[::-1]):
                scorer = factory([p for p in photos.values() if p.label in fitted_on], glint)
                for kind, (split, strangers) in splits(args.data, args.dataset, k, scored).items():
                    (closed if kind == "closed" else opened).add(
                        count(decide(photos, split, strangers, scorer, needs))
                    )
            rank1 = f"{closed.rank1 / max(closed.enrolled_probes, 1):.1%}"
            print(f"| {name} | {k} | {closed.cell()} | {rank1} | {opened.cell()} |")

    print()
    print(
        "## Candidates that fit nothing on this set, on the benchmark's own splits (all "
        f"{len(names)} people in the closed set's gallery, two thirds in the open set's; "
        f"rounds 0 to {args.rounds - 1} of bench.crossval summed)"
    )
    print()
    print("| candidate | k | closed set | rank-1 | open set |")
    print("|---|---|---|---|---|")
    for name, needs, factory in CANDIDATES:
        if name not in UNFITTED:
            continue
        scorer = factory([], glint)
        for k in (1, 2):
            cells = {"closed": Counts(), "open": Counts()}
            for rotation in range(args.rounds):
                for kind, (split, strangers) in splits(
                    args.data, args.dataset, k, frozenset(names), rotation
                ).items():
                    cells[kind].add(count(decide(photos, split, strangers, scorer, needs)))
            rank1 = f"{cells['closed'].rank1 / max(cells['closed'].enrolled_probes, 1):.1%}"
            print(f"| {name} | {k} | {cells['closed'].cell()} | {rank1} | {cells['open'].cell()} |")

    # What any single threshold could reach with each candidate's ranking (not a setting: it
    # looks at the scored probes), against what the issue asks: 3 points over the baseline with
    # no more wrong names than it, 2 enrolled, closed set, all people.
    splits_2 = splits(args.data, args.dataset, 2, frozenset(names))
    closed_split = splits_2["closed"]
    base = count(decide(photos, *closed_split, baseline_scorer, "baseline"))
    bar = base.right + int(np.ceil(0.03 * (base.right + base.wrong + base.unknown)))
    print()
    print(
        f"## Oracle bound, 2 enrolled, closed set, all {len(names)} people: the most probes right "
        f"at any one threshold with at most {base.wrong} wrong names (the baseline's), against "
        f"the {bar} that 3 points over the baseline's {base.right} take"
    )
    print()
    print(
        "| candidate | rank-1 | most right, at most the baseline's wrong names | "
        "most right, one wrong name more |"
    )
    print("|---|---|---|---|")
    for name, needs, factory in CANDIDATES:
        if name not in UNFITTED or needs == "baseline":
            continue
        decisions = decide(photos, *closed_split, factory([], glint), needs)
        c = count(decisions)
        right, _ = oracle(decisions, max_wrong=base.wrong)
        more, _ = oracle(decisions, max_wrong=base.wrong + 1)
        print(f"| {name} | {c.rank1}/{c.enrolled_probes} | {right} | {more} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
