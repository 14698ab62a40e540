"""``python -m bench.eye_survey``: the tools behind the hand labels in ``bench/labels/``.

No shared set labels eye state or gaze, so the labels were made by looking at eye-region crops.
This module makes what was looked at, outside the project (the photos never enter it):

* ``ratios OUT.csv``: every face of the shared sets (the largest face of a one-face set, every
  face at least ``MIN_FACE`` px wide of a group-photo set) with its eye openings (mesh and the
  iris model's lid contour, each eye), EyeDirection and head pose.
* ``sheets RATIOS.csv DIR``: contact sheets (Pillow grids of the face and a level eye-region
  crop, each numbered) of, per set, the faces with the lowest openings, those whose EyeDirection
  turns furthest sideways, and a seeded random sample of the rest, and
  ``DIR/key.csv`` mapping each tile's number to its face. Labels are written by tile number
  and joined to the key with ``labels`` (``tile,label`` lines in, the project's CSV out).
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from bench.datasets import DEFAULT_ROOT
from bench.facetrail_side import bench_settings
from facetrail.backends.local.attributes import estimate_pose, eye_direction, eye_openings
from facetrail.backends.local.pipeline import FacePipeline
from facetrail.modelfiles import install_models

# Sets of one face per photo (their largest face is the labelled one) and of group photos.
ONE_FACE_SETS = (
    "celeba_attributes",
    "celeba_identities",
    "glint_celebrity_chips",
    "utkface_balanced",
    "fer2013_sample",
)
GROUP_SETS = ("deepface", "face_recognition", "dlib")
MIN_FACE = 40  # px; smaller faces' eyes are a few pixels: nothing to label by eye
FIELDS = (
    "dataset",
    "file",
    "face",
    "box",
    "mesh_left",
    "mesh_right",
    "lid_left",
    "lid_right",
    "gaze_yaw",
    "gaze_pitch",
    "gaze_confidence",
    "head_yaw",
    "head_pitch",
)


@dataclass(frozen=True)
class Layout:
    """A contact sheet: ``tile`` the eye-region crop's size (both eyes, some brow and cheek),
    beside a square face thumbnail of its height; ``columns`` x ``rows`` tiles."""

    tile: tuple[int, int]
    columns: int
    rows: int


# Eye state was judged on the small tiles; gaze needs the larger ones (on the small tiles the
# iris's place in the eye was misjudged, seen when the first gaze labels were checked).
EYES_LAYOUT = Layout(tile=(240, 90), columns=5, rows=9)
GAZE_LAYOUT = Layout(tile=(480, 180), columns=2, rows=5)


def log(message: str) -> None:
    print(f"[eyes] {message}", file=sys.stderr, flush=True)


def photos(root: Path, dataset: str) -> Iterator[str]:
    """The set's photos, relative to its folder, in a fixed order."""
    folder = root / dataset
    if (folder / "labels.csv").is_file():
        with (folder / "labels.csv").open() as handle:
            yield from (row["path"] for row in csv.DictReader(handle))
    elif dataset == "celeba_attributes":
        yield from (f"images/{p.name}" for p in sorted((folder / "images").glob("*.jpg")))
    elif dataset == "dlib":
        yield from (
            str(p.relative_to(folder)) for p in sorted((folder / "examples/faces").glob("*.jpg"))
        )
    else:
        found = [p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"}]
        yield from sorted(str(p.relative_to(folder)) for p in found)


# The face mesh's lids, per eye: (corner, corner, three upper-lid points, the three lower-lid
# points facing them), image-left eye first. Surveyed beside the iris model's lids; they do not
# close with the eyes, so EyesOpen uses the iris model's (facetrail.backends.local.attributes).
MESH_EYE_POINTS = (
    (33, 133, (160, 159, 158), (144, 145, 153)),
    (362, 263, (385, 386, 387), (380, 374, 373)),
)


def mesh_eye_openings(mesh: np.ndarray) -> tuple[float, float]:
    """Each eye's mean lid gap over its corner distance from the mesh, image-left eye first."""
    points = np.asarray(mesh, np.float64)
    out = []
    for a, b, upper, lower in MESH_EYE_POINTS:
        width = max(float(np.linalg.norm(points[a] - points[b])), 1e-6)
        gap = np.linalg.norm(points[list(upper)] - points[list(lower)], axis=1).mean()
        out.append(float(gap) / width)
    return out[0], out[1]


def load(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def survey(pipeline: FacePipeline, root: Path, datasets: Sequence[str]) -> Iterator[dict[str, str]]:
    for dataset in datasets:
        count = 0
        for file in photos(root, dataset):
            try:
                rgb = load(root / dataset / file)
            except OSError:
                continue
            faces = pipeline.detect(rgb)
            if dataset in ONE_FACE_SETS:
                faces = faces[:1]
            else:
                faces = [f for f in faces if f.box[2] - f.box[0] >= MIN_FACE]
            if not faces:
                continue
            meshes = pipeline.face_mesh_model.predict(rgb, faces)
            eyes = pipeline.iris_model.predict(rgb, meshes)
            for index, (face, mesh, found) in enumerate(zip(faces, meshes, eyes, strict=True)):
                mesh_l, mesh_r = mesh_eye_openings(mesh)
                lid_l, lid_r = eye_openings(found)
                gaze = eye_direction(mesh, found.centres)
                pose = estimate_pose(face.landmarks)
                yield {
                    "dataset": dataset,
                    "file": file,
                    "face": str(index),
                    "box": " ".join(str(round(float(v))) for v in face.box),
                    "mesh_left": f"{mesh_l:.4f}",
                    "mesh_right": f"{mesh_r:.4f}",
                    "lid_left": f"{lid_l:.4f}",
                    "lid_right": f"{lid_r:.4f}",
                    "gaze_yaw": f"{gaze.yaw:.1f}",
                    "gaze_pitch": f"{gaze.pitch:.1f}",
                    "gaze_confidence": f"{gaze.confidence:.0f}",
                    "head_yaw": f"{pose.yaw:.1f}",
                    "head_pitch": f"{pose.pitch:.1f}",
                }
            count += 1
        log(f"{dataset}: {count} photos with a face")


def eye_crop(rgb: np.ndarray, mesh: np.ndarray, tile: tuple[int, int]) -> Image.Image:
    """Both eyes, level, ``tile``-sized: the outer corners 60 % of the tile's width apart."""
    left, right = np.asarray(mesh[33], np.float64), np.asarray(mesh[263], np.float64)
    centre = (left + right) / 2
    distance = max(float(np.linalg.norm(right - left)), 1.0)
    angle = float(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0])))
    scale = 0.6 * tile[0] / distance
    rotation = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, scale)
    matrix = np.asarray(rotation, np.float64)
    matrix[:, 2] += np.array([tile[0] / 2, tile[1] / 2]) - centre
    pixels = np.ascontiguousarray(rgb)
    crop = cv2.warpAffine(pixels, matrix, tile, flags=cv2.INTER_CUBIC)  # black beyond the edge
    return Image.fromarray(crop)


def face_crop(rgb: np.ndarray, box: Sequence[float], size: int) -> Image.Image:
    """The face box, square, ``size`` px: to judge the head's turn beside the eyes."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    img = Image.fromarray(rgb).crop(
        (int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2))
    )
    return img.resize((size, size))


def opening(row: dict[str, str], source: str) -> float:
    return (float(row[f"{source}_left"]) + float(row[f"{source}_right"])) / 2


def select(
    rows: list[dict[str, str]], lowest: float, turned: float, sample: float, seed: int
) -> list[dict[str, str]]:
    """Per set: the ``lowest`` fraction of its faces by each opening (mesh, lids), the
    ``turned`` fraction with the largest EyeDirection yaw either way, and a ``sample`` fraction
    drawn at random (``seed``) from the rest."""
    chosen: dict[tuple[str, str, str], dict[str, str]] = {}
    picked: list[dict[str, str]] = []
    draw = random.Random(seed)
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        own = [r for r in rows if r["dataset"] == dataset]
        ranked = [
            sorted(own, key=lambda r: opening(r, "mesh")),
            sorted(own, key=lambda r: opening(r, "lid")),
            sorted(own, key=lambda r: -abs(float(r["gaze_yaw"]))),
        ]
        reasons = ("lowest mesh opening", "lowest lid opening", "gaze turned furthest")
        for order, fraction, why in zip(ranked, (lowest, lowest, turned), reasons, strict=True):
            for row in order[: round(fraction * len(own))]:
                chosen.setdefault((row["dataset"], row["file"], row["face"]), {**row, "why": why})
        rest = [r for r in own if (r["dataset"], r["file"], r["face"]) not in chosen]
        drawn = draw.sample(rest, min(len(rest), max(1, round(sample * len(own)))))
        picked += [{**row, "why": "random"} for row in drawn]
    return list(chosen.values()) + picked


def select_gaze(rows: list[dict[str, str]], each: int, seed: int) -> list[dict[str, str]]:
    """Per set: the ``each`` faces whose EyeDirection yaw is most negative, the ``each`` most
    positive, and ``each`` drawn at random (``seed``) from the rest."""
    picked: list[dict[str, str]] = []
    draw = random.Random(seed)
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        own = [r for r in rows if r["dataset"] == dataset]
        own.sort(key=lambda r: float(r["gaze_yaw"]))
        ends = own[:each] + own[-each:] if len(own) > 2 * each else own
        picked += [{**r, "why": "gaze yaw most negative"} for r in own[:each]]
        picked += [{**r, "why": "gaze yaw most positive"} for r in own[-each:]]
        rest = [r for r in own if r not in ends]
        picked += [{**r, "why": "random"} for r in draw.sample(rest, min(each, len(rest)))]
    return picked


def sheets(
    pipeline: FacePipeline,
    root: Path,
    rows: list[dict[str, str]],
    out: Path,
    shuffle: int,
    layout: Layout = EYES_LAYOUT,
) -> None:
    """Contact sheets of ``rows`` (shuffled with ``shuffle`` so that the low-ratio ones are not
    all together) and ``out/key.csv``."""
    random.Random(shuffle).shuffle(rows)
    out.mkdir(parents=True, exist_ok=True)
    tile_size, columns = layout.tile, layout.columns
    per_sheet = columns * layout.rows
    cell = (tile_size[0] + tile_size[1] + 4, tile_size[1] + 16)
    with (out / "key.csv").open("w", newline="") as handle:
        key = csv.writer(handle)
        key.writerow(["tile", "dataset", "file", "face", "box", "why"])
        for start in range(0, len(rows), per_sheet):
            sheet = Image.new("RGB", (columns * cell[0], layout.rows * cell[1]), "white")
            draw = ImageDraw.Draw(sheet)
            for slot, row in enumerate(rows[start : start + per_sheet]):
                tile = start + slot
                rgb = load(root / row["dataset"] / row["file"])
                box = [float(v) for v in row["box"].split()]
                detections = [d for d in pipeline.detect(rgb) if same_box(d.box, box)]
                if not detections:
                    continue
                mesh = pipeline.face_mesh_model.predict(rgb, detections[:1])[0]
                x, y = (slot % columns) * cell[0], (slot // columns) * cell[1]
                sheet.paste(face_crop(rgb, box, tile_size[1]), (x, y + 14))
                sheet.paste(eye_crop(rgb, mesh, tile_size), (x + tile_size[1] + 2, y + 14))
                draw.text((x + 2, y + 1), str(tile), fill="black")
                key.writerow(
                    [tile, row["dataset"], row["file"], row["face"], row["box"], row["why"]]
                )
            sheet.save(out / f"sheet{start // per_sheet:03d}.png")
            log(f"sheet {start // per_sheet}")


def same_box(box: Sequence[float] | np.ndarray, other: Sequence[float]) -> bool:
    """Whether a detection's box is the surveyed one (pixels, rounded there)."""
    return all(abs(float(a) - b) <= 2 for a, b in zip(box, other, strict=True))


# The hand labels' codes (one letter each, as typed while looking at a sheet) -> the CSV's words.
EYE_CODES = {"o": "open", "c": "closed", "u": "unsure"}
ACROSS_CODES = {"L": "left", "C": "centre", "R": "right", "?": "unsure"}
UP_CODES = {"U": "up", "C": "centre", "D": "down", "?": "unsure"}
LABEL_FIELDS = {
    "eyes": ("dataset", "file", "face", "box", "group", "reviewed_because", "eyes"),
    "gaze": ("dataset", "file", "face", "box", "group", "reviewed_because", "across", "up"),
}


def labels(key: Path, given: Path, out: Path, kind: str, group: str) -> None:
    """Join hand labels (``tile code...`` lines: eyes ``o|c|u``; gaze ``L|C|R|?`` then
    ``U|C|D|?``, image directions) to a sheet's ``key`` and append them to ``out``."""
    with key.open() as handle:
        tiles = {row["tile"]: row for row in csv.DictReader(handle)}
    new = not out.is_file()
    with given.open() as handle, out.open("a", newline="") as target:
        writer = csv.writer(target, lineterminator="\n")
        if new:
            writer.writerow(LABEL_FIELDS[kind])
        for line in handle:
            if not line.strip() or line.startswith("#"):
                continue
            tile, *codes = line.split()
            row = tiles[tile]
            if kind == "eyes":
                words = [EYE_CODES[codes[0]]]
            else:
                words = [ACROSS_CODES[codes[0]], UP_CODES[codes[1]]]
            head = [row["dataset"], row["file"], row["face"], row["box"], group, row["why"]]
            writer.writerow(head + words)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.eye_survey", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_ROOT)
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("ratios")
    one.add_argument("out", type=Path)
    one.add_argument("--sets", nargs="*", default=[*ONE_FACE_SETS, *GROUP_SETS])
    two = sub.add_parser("sheets")
    two.add_argument("ratios", type=Path)
    two.add_argument("out", type=Path)
    two.add_argument("--sets", nargs="*", default=None, help="only these sets")
    two.add_argument("--lowest", type=float, default=0.06)
    two.add_argument("--turned", type=float, default=0.03)
    two.add_argument("--sample", type=float, default=0.03)
    two.add_argument("--seed", type=int, default=11)
    gaze = sub.add_parser("gaze-sheets")
    gaze.add_argument("ratios", type=Path)
    gaze.add_argument("out", type=Path)
    gaze.add_argument("--sets", nargs="*", default=None, help="only these sets")
    gaze.add_argument("--each", type=int, default=8)
    gaze.add_argument("--seed", type=int, default=21)
    three = sub.add_parser("labels")
    three.add_argument("key", type=Path)
    three.add_argument("given", type=Path)
    three.add_argument("out", type=Path)
    three.add_argument("--kind", choices=sorted(LABEL_FIELDS), required=True)
    three.add_argument("--group", required=True, help="the set group: choose or score")
    args = parser.parse_args(argv)
    if args.command == "labels":
        labels(args.key, args.given, args.out, args.kind, args.group)
        return 0
    with tempfile.TemporaryDirectory(prefix="facetrail-bench-eyes-") as home:
        settings = bench_settings(Path(home))
        install_models(settings, ["pnet", "rnet", "onet", "face_mesh", "iris"], log=log)
        pipeline = FacePipeline(settings)
        if args.command == "ratios":
            with args.out.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, FIELDS)
                writer.writeheader()
                for row in survey(pipeline, args.data, args.sets):
                    writer.writerow(row)
            return 0
        with args.ratios.open() as handle:
            rows = [r for r in csv.DictReader(handle) if not args.sets or r["dataset"] in args.sets]
        if args.command == "gaze-sheets":
            chosen = select_gaze(rows, args.each, args.seed)
            sheets(pipeline, args.data, chosen, args.out, args.seed, GAZE_LAYOUT)
        else:
            chosen = select(rows, args.lowest, args.turned, args.sample, args.seed)
            sheets(pipeline, args.data, chosen, args.out, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
