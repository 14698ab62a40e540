"""RetinaFace's proposal threshold for ``retinaface-onet``: ``python -m bench.proposals``.

RetinaFace proposes, O-net (with its mirror check and 0.9 cut) decides; a lower proposal
threshold hands O-net more candidates, faces and non-faces alike. For each threshold tried:

- faces found (IoU >= 0.5) among the largest faces of ``celeba_attributes`` photos scaled to
  44 and 60 px (1.1 and 1.5x Rekognition's floor) on a 1920x1080 grey canvas, as
  ``bench.floor`` builds them;
- faces returned in the ``coco128`` photos with no person annotated (each one is false);
- RetinaFace's proposals per photo on those coco photos (O-net's extra work).

These photos are used by no detection benchmark: ``bench.floor`` scores celeba_identities,
``bench.detectors`` dlib's boxes and photos. The rule that chose the shipped threshold was
fixed before the run: the lowest threshold tried whose false faces on the photos without
people are no more than at 0.5 (the threshold before).
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from bench import datasets
from bench.datasets import PixelBox
from bench.detectors import rgb
from bench.floor import FLOOR, TRUTH_SIDE, on_canvas, pixel_box
from bench.metrics import iou
from facetrail.inference import detector
from facetrail.inference.detector import DetectorConfig, RetinaONetDetector
from facetrail.modelfiles import model_path
from facetrail.settings import Settings

UInt8Array = npt.NDArray[np.uint8]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proposals", description=__doc__)
    parser.add_argument("--data", type=Path, default=datasets.DEFAULT_ROOT)
    parser.add_argument("--thresholds", default="0.5,0.3,0.2,0.1,0.05")
    args = parser.parse_args(argv)
    settings = Settings.from_env(threads=1)
    files = [model_path(settings, n) for n in RetinaONetDetector.weights]
    truth_finder = RetinaONetDetector(
        files, threads=1, config=DetectorConfig(min_face_size=0), max_side=TRUTH_SIDE
    )
    times = (1.1, 1.5)
    canvases: list[list[tuple[UInt8Array, PixelBox]]] = []
    for path in sorted((args.data / "celeba_attributes" / "images").glob("*.jpg")):
        photo = rgb(path)
        faces = truth_finder.predict(photo)
        if faces:
            canvases.append([on_canvas(photo, faces[0].box, t * FLOOR) for t in times])
    with (args.data / "coco128" / "image_labels.csv").open() as fh:
        empty = [
            rgb(args.data / "coco128" / row["path"])
            for row in csv.DictReader(fh)
            if row["num_person"] == "0"
        ]
    print(
        f"{len(canvases)} celeba_attributes faces at {', '.join(f'{t * FLOOR:.0f}' for t in times)}"
        f" px on a 1920x1080 canvas; {len(empty)} coco128 photos without people"
    )
    print()
    print(
        "| proposal threshold | "
        + " | ".join(f"found at {t * FLOOR:.0f} px" for t in times)
        + " | faces in photos without people | proposals per photo without people |"
    )
    print("|---|" + "---|" * (len(times) + 2))
    chosen = original = None
    for threshold in (float(t) for t in args.thresholds.split(",")):
        # The threshold is read when a detector is built.
        detector.PROPOSAL_THRESHOLD = threshold
        model = RetinaONetDetector(files, threads=1, config=DetectorConfig())
        found = [0] * len(times)
        for per_time in canvases:
            for i, (canvas, truth) in enumerate(per_time):
                boxes = [pixel_box(d.box) for d in model.predict(canvas)]
                found[i] += any(iou(b, truth) >= 0.5 for b in boxes)
        false = sum(len(model.predict(photo)) for photo in empty)
        proposals = sum(
            len(model._proposer.predict(_work(photo, model.max_side))) for photo in empty
        )
        print(
            f"| {threshold:g} | {' | '.join(map(str, found))} | {false} "
            f"| {proposals / max(len(empty), 1):.1f} |",
            flush=True,
        )
        if threshold == 0.5:
            original = false
        if original is not None and false <= original:
            chosen = threshold
    print()
    print(f"By the rule: {chosen if chosen is not None else 'none (0.5 was not tried first)'}")
    return 0


def _work(photo: UInt8Array, side: int) -> UInt8Array:
    """The copy RetinaONetDetector hands its proposer."""
    return detector._shrunk(photo, side, mild=cv2.INTER_LINEAR)[0]


if __name__ == "__main__":
    raise SystemExit(main())
