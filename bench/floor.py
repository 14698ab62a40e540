"""Faces just above Rekognition's floor, per detection work side: ``python -m bench.floor``.

Rekognition finds faces down to 40 px in a 1920 px photo. The RetinaFace detectors shrink a
photo to a work side before their one pass; this asks whether faces near that floor are still
found at each side, and what the pass costs there, with MTCNN (its own pyramid) beside them.

Each ``celeba_identities`` photo (each shows its person) gives its largest face, found with the
photo at its own size. The photo is then scaled so that face's longer side is 1.1, 1.5 and 2x
the floor (44, 60 and 80 px) and pasted at the middle of a 1920x1080 grey canvas; a canvas
counts as found when the detector returns a box at IoU >= 0.5 with the scaled face's box.
The truth box comes from ``retinaface-onet`` for every row. CPU time is per canvas (one
thread), detection alone.

Nothing here was used to choose a detector's settings; it checks the work side afterwards.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from bench import datasets
from bench.datasets import PixelBox
from bench.detectors import rgb
from bench.metrics import iou
from facetrail.inference.base import Model
from facetrail.inference.detector import (
    MIN_FACE_RATIO,
    Detection,
    DetectorConfig,
    MTCNNDetector,
    RetinaFaceDetector,
    RetinaONetDetector,
)
from facetrail.modelfiles import model_path
from facetrail.settings import Settings

UInt8Array = npt.NDArray[np.uint8]
CANVAS = (1920, 1080)  # width, height
FLOOR = MIN_FACE_RATIO * CANVAS[0]  # 40 px
GREY = 128
SIDED: dict[str, type[RetinaFaceDetector] | type[RetinaONetDetector]] = {
    "retinaface": RetinaFaceDetector,
    "retinaface-onet": RetinaONetDetector,
}
TRUTH_SIDE = 4096  # the truth is found with the photo at its own size


def pixel_box(box: npt.NDArray[np.float32]) -> PixelBox:
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    return PixelBox(x0, y0, x1 - x0, y1 - y0)


def on_canvas(
    photo: UInt8Array, face: npt.NDArray[np.float32], side: float
) -> tuple[UInt8Array, PixelBox]:
    """``photo`` scaled so ``face``'s longer side is ``side`` px, on a grey canvas, centred on
    the face; and the face's box there."""
    scale = side / float(max(face[2] - face[0], face[3] - face[1]))
    size = (max(1, round(photo.shape[1] * scale)), max(1, round(photo.shape[0] * scale)))
    small = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
    canvas = np.full((CANVAS[1], CANVAS[0], 3), GREY, np.uint8)
    # Place the photo so the face's centre lands on the canvas's centre.
    cx, cy = (face[0] + face[2]) / 2 * scale, (face[1] + face[3]) / 2 * scale
    left, top = round(CANVAS[0] / 2 - cx), round(CANVAS[1] / 2 - cy)
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + size[0], CANVAS[0]), min(top + size[1], CANVAS[1])
    canvas[y0:y1, x0:x1] = small[y0 - top : y1 - top, x0 - left : x1 - left]
    box = face[:4] * scale + np.array([left, top, left, top], np.float32)
    return canvas, pixel_box(box)


def detectors(
    settings: Settings, names: Sequence[str], sides: Sequence[int]
) -> dict[str, Model[list[Detection]]]:
    """Row label -> detector: the RetinaFace ones at each work side, MTCNN as configured."""
    config = DetectorConfig(min_face_size=settings.min_face_size)
    out: dict[str, Model[list[Detection]]] = {}
    for name in names:
        if name == "mtcnn":
            files = [model_path(settings, n) for n in MTCNNDetector.weights]
            label = f"mtcnn (pyramid on at most {config.max_side} px)"
            out[label] = MTCNNDetector(files, threads=1, config=config)
            continue
        cls = SIDED[name]
        files = [model_path(settings, n) for n in cls.weights]
        for side in sides:
            out[f"{name} at {side} px"] = cls(files, threads=1, config=config, max_side=side)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--data", type=Path, default=datasets.DEFAULT_ROOT)
    parser.add_argument("--detectors", default="retinaface-onet,mtcnn", help="comma-separated")
    parser.add_argument("--sides", default="960,768", help="RetinaFace work sides")
    parser.add_argument("--times", default="1.1,1.5,2", help="face sides, as multiples of 40 px")
    parser.add_argument("--limit", type=int, default=None, help="first N photos only")
    args = parser.parse_args(argv)
    settings = Settings.from_env(threads=1)
    names = [n for n in args.detectors.split(",") if n]
    sides = [int(s) for s in args.sides.split(",")]
    times = [float(t) for t in args.times.split(",")]
    truth_files = [model_path(settings, n) for n in RetinaONetDetector.weights]
    truth_finder = RetinaONetDetector(
        truth_files, threads=1, config=DetectorConfig(min_face_size=0), max_side=TRUTH_SIDE
    )
    rows = detectors(settings, names, sides)
    photos = sorted((args.data / "celeba_identities" / "images").glob("*.jpg"))[: args.limit]
    found = {(label, t): 0 for label in rows for t in times}
    cpu = dict.fromkeys(rows, 0.0)
    canvases = 0
    for path in photos:
        photo = rgb(path)
        faces = truth_finder.predict(photo)
        if not faces:
            continue
        for t in times:
            canvas, truth = on_canvas(photo, faces[0].box, t * FLOOR)
            canvases += 1
            for label, detector in rows.items():
                start = time.process_time()
                boxes = [pixel_box(d.box) for d in detector.predict(canvas)]
                cpu[label] += time.process_time() - start
                found[label, t] += any(iou(b, truth) >= 0.5 for b in boxes)
    per_time = canvases // len(times)
    print(
        f"{per_time} celeba_identities faces (of {len(photos)} photos) at "
        f"{', '.join(f'{t * FLOOR:.0f}' for t in times)} px on a {CANVAS[0]}x{CANVAS[1]} canvas"
    )
    print()
    print(
        "| detector | "
        + " | ".join(f"found at {t * FLOOR:.0f} px" for t in times)
        + " | CPU ms per canvas |"
    )
    print("|---" * (len(times) + 2) + "|")
    for label in rows:
        cells = " | ".join(f"{found[label, t]}/{per_time}" for t in times)
        print(f"| {label} | {cells} | {1000 * cpu[label] / max(canvases, 1):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
