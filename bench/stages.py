"""Where an identification's CPU time goes: ``python -m bench.stages [--detector NAME]``.

The throughput section's photos (``bench.plan``), or with ``--photos identify-jobs`` those of
``bench.scale``'s identify jobs (``--max-side`` shrinks them as there), are decoded, detected,
described and embedded with the local pipeline (no database), and each stage's process CPU time
(all threads) is summed and printed per photo. The detector's own steps (MTCNN's P-, R- and
O-net stages, their crops and packing; RetinaFace's single pass) are timed by wrapping its
methods for this run only. Untimed warm-up on the first photos; ``--repeat`` passes, averaged.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench import datasets
from bench.plan import Plan
from facetrail.backends.local.pipeline import FacePipeline
from facetrail.images.decode import load_image
from facetrail.inference import detector as mtcnn
from facetrail.inference import embedders, runtime
from facetrail.inference.base import resolve_threads
from facetrail.settings import Settings

LIMITS = {"max_bytes": 1 << 30, "max_pixels": 1 << 30}


@contextmanager
def timing(spent: defaultdict[str, float], name: str) -> Iterator[None]:
    start = time.process_time()
    try:
        yield
    finally:
        spent[name] += time.process_time() - start


def wrap(owner: Any, attribute: str, name: str, spent: defaultdict[str, float]) -> None:
    """Time every call of ``owner.attribute`` under ``name``."""
    original: Callable[..., Any] = getattr(owner, attribute)

    def timed(*args: Any, **kwargs: Any) -> Any:
        with timing(spent, name):
            return original(*args, **kwargs)

    setattr(owner, attribute, timed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__)
    parser.add_argument("--detector", default=Settings.detector)
    parser.add_argument("--embedder", default=Settings.embedder)
    parser.add_argument("--threads", type=int, default=Settings().threads)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--data", type=Path, default=datasets.DEFAULT_ROOT)
    parser.add_argument("--photos", choices=("throughput", "identify-jobs"), default="throughput")
    parser.add_argument("--max-side", type=int, default=0, help="shrink photos to this side")
    args = parser.parse_args(argv)
    if args.photos == "identify-jobs":
        from bench.scale import PHOTOS

        photos = list(PHOTOS)
    else:
        photos = Plan(args.data, None).photos
    with tempfile.TemporaryDirectory(prefix="facetrail-stages-") as tmp:
        if args.max_side:
            from bench.scale import shrink

            photos = shrink(photos, args.max_side, Path(tmp))
        return measure(args, photos)


def measure(args: argparse.Namespace, photos: Sequence[Path]) -> int:
    settings = Settings.from_env(
        detector=args.detector, embedder=args.embedder, threads=args.threads
    )
    pipeline = FacePipeline(settings)
    spent: defaultdict[str, float] = defaultdict(float)
    wrap(mtcnn.MTCNNDetector, "_stage_p", "detect: MTCNN P-net stage (pyramid, pack, run)", spent)
    wrap(mtcnn.MTCNNDetector, "_stage_r", "detect: MTCNN R-net stage (crops, run)", spent)
    wrap(mtcnn.MTCNNDetector, "_stage_o", "detect: MTCNN O-net stage (crops, run, mirror)", spent)
    wrap(mtcnn._Pyramid, "__init__", "detect: MTCNN pyramid levels", spent)
    wrap(mtcnn._Pyramid, "crops", "detect: MTCNN R/O-net crops", spent)
    wrap(mtcnn.RetinaFaceDetector, "_predict", "detect: RetinaFace pass (run, decode)", spent)
    wrap(mtcnn, "_shrunk", "detect: photo shrunk for RetinaFace", spent)
    wrap(mtcnn, "_area_crops", "detect: O-net crops of RetinaFace's boxes", spent)
    wrap(mtcnn, "_refine", "detect: O-net on RetinaFace's boxes (run, mirror check)", spent)
    wrap(embedders, "align_face", "align + embed: alignment", spent)
    wrap(runtime.TFLiteNet, "run", "TFLite runs (P/R/O-net, MobileFaceNet)", spent)
    for image in [load_image(p, **LIMITS) for p in photos[:4]]:  # models loaded, shapes built
        rgb = np.asarray(image.pixels)
        pipeline.embed(rgb, pipeline.detect(rgb))
    spent.clear()
    faces = 0
    for _ in range(args.repeat):
        for path in photos:
            with timing(spent, "decode (bytes -> RGB)"):
                image = load_image(path, **LIMITS)
                rgb = np.asarray(image.pixels)
            with timing(spent, "detect (all)"):
                found = pipeline.detect(rgb)
            with timing(spent, "describe (pose, quality)"):
                for face in found:
                    pipeline.describe(rgb, face)
            with timing(spent, "align + embed"):
                if found:
                    pipeline.embed(rgb, found)
            faces += len(found)
    count = len(photos) * args.repeat
    print(
        f"{len(photos)} photos x {args.repeat} passes, {faces // args.repeat} faces per pass, "
        f"{pipeline.model_version}, {resolve_threads(args.threads)} inference threads\n"
    )
    print("| stage | CPU ms per photo |")
    print("|---|---|")
    for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {1000 * seconds / count:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
