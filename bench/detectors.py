"""The local face detectors side by side: ``python -m bench.detectors``.

For each detector (``Settings.detector``), through the product path (``FacePipeline.detect``,
tight-crop retry included):

- recall and precision at IoU >= 0.5 on dlib's hand-checked boxes, ``training.xml`` and
  ``testing.xml`` (detections converted to dlib's box convention, ``dlib_style_box``);
- faces found in photos without people (dlib's animals, cars and painting; ``dogs.jpg``);
- photos of ``celeba_identities`` (each shows its person) where no face is found;
- CPU time per photo (all threads) of detection alone on deepface photos shrunk to 640, 1024
  and 1280 px on the long side, and on the celeba photos as they are.

Nothing here was used to choose a detector's settings.
"""

from __future__ import annotations

import argparse
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from bench import datasets
from bench.datasets import PixelBox
from bench.metrics import greedy_matches
from facetrail.backends.local.pipeline import FacePipeline
from facetrail.inference.detector import DETECTORS, dlib_style_box
from facetrail.settings import Settings

UInt8Array = npt.NDArray[np.uint8]
NON_FACES = [
    "dlib/dlib/test/ffmpeg_data/dog.jpg",
    "dlib/dlib/test/ffmpeg_data/eagle.jpg",
    "dlib/dlib/test/ffmpeg_data/giraffe.jpg",
    "dlib/dlib/test/ffmpeg_data/horses.jpg",
    "dlib/examples/mmod_cars_test_image.jpg",
    "dlib/examples/faces/dogs.jpg",
]
SPEED_PHOTOS = ["img1.jpg", "img20.jpg", "couple.jpg", "img33.jpg", "selfie-many-people.jpg"]


def rgb(path: Path) -> UInt8Array:
    return np.asarray(Image.open(path).convert("RGB"), np.uint8)


def boxed(pipeline: FacePipeline, root: Path, name: str) -> tuple[int, int, int]:
    """(matched, detections, truths) on one of dlib's box files."""
    folder = root / "dlib" / "examples" / "faces"
    matched = found = truths = 0
    for image in ET.parse(folder / name).getroot().iter("image"):
        truth = [
            PixelBox(*(float(b.attrib[k]) for k in ("left", "top", "width", "height")))
            for b in image.iter("box")
        ]
        detections = [
            dlib_style_box(d) for d in pipeline.detect(rgb(folder / image.attrib["file"]))
        ]
        boxes = [
            PixelBox(float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1]))
            for b in detections
        ]
        matched += greedy_matches(boxes, truth)
        found += len(boxes)
        truths += len(truth)
    return matched, found, truths


def cpu_ms(pipeline: FacePipeline, images: Sequence[UInt8Array], repeat: int = 3) -> float:
    for image in images[:2]:
        pipeline.detect(image)
    start = time.process_time()
    for _ in range(repeat):
        for image in images:
            pipeline.detect(image)
    return 1000 * (time.process_time() - start) / (repeat * len(images))


def shrunk(image: UInt8Array, side: int) -> UInt8Array:
    scale = side / max(image.shape[:2])
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.detectors", description=__doc__)
    parser.add_argument("--data", type=Path, default=datasets.DEFAULT_ROOT)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    root = args.data
    deepface = root / "deepface" / "tests" / "unit" / "dataset"
    speed = [rgb(deepface / name) for name in SPEED_PHOTOS]
    celeba = sorted((root / "celeba_identities" / "images").glob("*.jpg"))
    print(
        f"| detector | training.xml | testing.xml | faces in {len(NON_FACES)} photos without "
        f"people | celeba photos with no face (of {len(celeba)}) | CPU ms per photo at 640 / "
        "1024 / 1280 px | CPU ms per celeba photo |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in DETECTORS:
        pipeline = FacePipeline(Settings.from_env(detector=name, threads=args.threads))
        cells = []
        for xml in ("training.xml", "testing.xml"):
            matched, found, truths = boxed(pipeline, root, xml)
            cells.append(f"recall {matched}/{truths}, precision {matched}/{found}")
        non_faces = sum(len(pipeline.detect(rgb(root / p))) for p in NON_FACES)
        start, missed = time.process_time(), 0
        for path in celeba:
            missed += not pipeline.detect(rgb(path))
        per_celeba = 1000 * (time.process_time() - start) / len(celeba)
        sizes = " / ".join(
            f"{cpu_ms(pipeline, [shrunk(i, s) for i in speed]):.1f}" for s in (640, 1024, 1280)
        )
        print(
            f"| {name} | {cells[0]} | {cells[1]} | {non_faces} | {missed} | {sizes} "
            f"| {per_celeba:.1f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
