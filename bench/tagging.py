"""``python -m bench.tagging``: speed and accuracy of image tagging (labels, text, moderation).

Prints markdown tables on stdout (progress on stderr); docs/tagging.md records a run.

* Speed: images per second per operation, one process with ``--threads`` inference threads,
  decoding excluded, on the labelled non-face photos plus the first deepface photos by name.
  Also the projected time for 10,000 images with every operation.
* Labels: the subjects dlib's README names for its non-face photos (dog.jpg: dog, bicycle,
  truck; eagle: bird; giraffe: giraffe, zebra; horses: horse; the two mmod car scenes: car), at
  the default floor (20, the model packager's) and, for reference only, at 50. Then the
  ImageNet classifier on its own: one image-level label per photo, fixed before scoring from
  what the photo shows (Dog, Bird, Mammal for the giraffe and zebra, which ImageNet lacks as
  one class, Horse, Car), found as a label or a parent of one; the image-level labels it adds;
  and each label model's time per photo.
* Moderation: P(nsfw) over every photo in the shared data, all of them negatives.
* Text: character and word accuracy (whitespace normalised) on tesseract's pages with exact
  ground truth and their rotated copies, and exact-word accuracy on the scene-word crops (by the
  full pipeline, and with ``single_line=True`` which skips detection).

Nothing here chooses a threshold: every setting was fixed before these photos were scored.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facetrail.backends.local.backend import LocalBackend
from facetrail.images import LoadedImage, load_image
from facetrail.inference.text import TextReader
from facetrail.settings import Settings
from facetrail.tagging.text import TextDetection
from facetrail.testing.textmetrics import char_accuracy, normalise, word_accuracy

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FFMPEG = Path("dlib/dlib/test/ffmpeg_data")
EXAMPLES = Path("dlib/examples")
DEEPFACE = Path("deepface/tests/unit/dataset")
OCR = Path("ocr")
SROIE = Path("sroie_receipts_text")

EXPECTED_LABELS: dict[Path, frozenset[str]] = {
    FFMPEG / "dog.jpg": frozenset({"Dog", "Bicycle", "Truck"}),
    FFMPEG / "eagle.jpg": frozenset({"Bird"}),
    FFMPEG / "giraffe.jpg": frozenset({"Giraffe", "Zebra"}),
    FFMPEG / "horses.jpg": frozenset({"Horse"}),
    EXAMPLES / "mmod_cars_test_image.jpg": frozenset({"Car"}),
    EXAMPLES / "mmod_cars_test_image2.jpg": frozenset({"Car"}),
}
# What the classifier alone should name for the whole photo (a label or a parent of one).
EXPECTED_IMAGE_LABEL: dict[Path, str] = {
    FFMPEG / "dog.jpg": "Dog",
    FFMPEG / "eagle.jpg": "Bird",
    FFMPEG / "giraffe.jpg": "Mammal",
    FFMPEG / "horses.jpg": "Horse",
    EXAMPLES / "mmod_cars_test_image.jpg": "Car",
    EXAMPLES / "mmod_cars_test_image2.jpg": "Car",
}
UNLABELLED = (FFMPEG / "scream.jpg",)  # a painting: what comes out is only listed
PAGES = (
    ("phototest.tif", "phototest.txt"),
    ("eurotext.tif", "eurotext.txt"),
    ("phototest-rotated-L.png", "phototest.txt"),
    ("phototest-rotated-R.png", "phototest.txt"),
    ("phototest-rotated-180.png", "phototest.txt"),
)
SEQUENTIAL_REKOGNITION_HOURS = 8.0  # issue 5: 10,000 images in a sequential Rekognition loop


def log(message: str) -> None:
    print(f"[bench.tagging] {message}", file=sys.stderr, flush=True)


def load(path: Path) -> LoadedImage:
    return load_image(path, max_bytes=200 * 1024 * 1024, max_pixels=200_000_000)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# -- speed --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    op: str
    per_image_ms: list[float]

    @property
    def images_per_second(self) -> float:
        return len(self.per_image_ms) / (sum(self.per_image_ms) / 1000.0)


class PreviousTextReader(TextReader):
    """The text reader as it was, the baseline beside it: detection enlarges every photo to at
    least 736 px on its short side (RapidOCR's default) and there is no "any text" pass."""

    detect_side = 736
    detect_limit_type = "min"
    probe_side = None


TEXT_BEFORE = "text, before"
OPS = ("labels", "text", "moderation", TEXT_BEFORE)


def operations(tagger: LocalBackend) -> dict[str, Callable[[LoadedImage], object]]:
    reader = tagger.text_reader
    previous = PreviousTextReader(reader.files, threads=reader.threads)
    floor = tagger.settings.text_min_confidence

    def text_before(image: LoadedImage) -> object:
        return previous.predict(image.pixels.convert("RGB"), min_confidence=floor)

    return {
        "labels": tagger.detect_labels,
        "text": tagger.detect_text,
        "moderation": tagger.detect_moderation_labels,
        TEXT_BEFORE: text_before,
    }


def with_totals(per_op: dict[str, float]) -> list[tuple[str, float]]:
    """Every operation's figure, then all three operations now and with text as before."""
    now = per_op["labels"] + per_op["text"] + per_op["moderation"]
    before = now - per_op["text"] + per_op[TEXT_BEFORE]
    return [*per_op.items(), ("all three", now), ("all three, text as before", before)]


def speed(tagger: LocalBackend, images: Sequence[LoadedImage], warmup: int) -> list[Timing]:
    ops = operations(tagger)
    for image in images[:warmup]:  # model loading and first-run allocations, untimed
        for run in ops.values():
            run(image)
    timings: dict[str, list[float]] = {op: [] for op in ops}
    for i, image in enumerate(images):
        log(f"speed {i + 1}/{len(images)} {Path(image.source).name}")
        for op, run in ops.items():
            start = time.perf_counter()
            run(image)
            timings[op].append((time.perf_counter() - start) * 1000.0)
    out = [Timing(op, ms) for op, ms in timings.items()]
    labels, text, moderation, before = (timings[op] for op in OPS)
    out.append(Timing("all three", [sum(t) for t in zip(labels, text, moderation, strict=True)]))
    out.append(
        Timing(
            "all three, text as before",
            [sum(t) for t in zip(labels, before, moderation, strict=True)],
        )
    )
    return out


def _speed_worker(
    paths: Sequence[Path], threads: int, barrier: Any, warmup: int, ops: Sequence[str]
) -> None:
    run = operations(LocalBackend(Settings.from_env(threads=threads)))
    images = [load(p) for p in paths]
    for image in images[:warmup]:
        for op in ops:
            run[op](image)
    barrier.wait()  # loaded and warm
    for op in ops:
        for image in images:
            run[op](image)
        barrier.wait()  # this operation done everywhere


def parallel_speed(
    paths: Sequence[Path], processes: int, threads: int, warmup: int
) -> list[tuple[str, float]]:
    """(operation, images/s) with ``processes`` worker processes, each operation timed as one
    phase across all of them (wall clock between barriers)."""
    ops = OPS
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    shares = [list(paths[i::processes]) for i in range(processes)]
    workers = [
        ctx.Process(target=_speed_worker, args=(share, threads, barrier, warmup, ops))
        for share in shares
    ]
    for w in workers:
        w.start()
    barrier.wait()
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    for op in ops:
        barrier.wait()
        now = time.perf_counter()
        seconds[op] = now - start
        start = now
        log(f"{op} done")
    for w in workers:
        w.join()
    return [(op, len(paths) / s) for op, s in with_totals(seconds)]


def parallel_table(rates: Sequence[tuple[str, float]], processes: int, threads: int) -> str:
    rows = [(op, f"{rate:.2f}", f"{10_000 / rate / 3600.0:.2f} h") for op, rate in rates]
    return f"{processes} processes x {threads} thread(s):\n\n" + table(
        ("operation", "images/s", "10,000 images"), rows
    )


def speed_table(timings: Sequence[Timing], count: int) -> str:
    rows = []
    for t in timings:
        hours = 10_000 / t.images_per_second / 3600.0
        rows.append(
            (
                t.op,
                f"{statistics.median(t.per_image_ms):.0f}",
                f"{statistics.mean(t.per_image_ms):.0f}",
                f"{t.images_per_second:.2f}",
                f"{hours:.2f} h",
            )
        )
    header = ("operation", "median ms/image", "mean ms/image", "images/s", "10,000 images")
    return f"Speed on {count} photos:\n\n" + table(header, rows)


# -- labels -------------------------------------------------------------------------------------


def labels_section(tagger: LocalBackend, root: Path) -> str:
    rows = []
    found_total = {20: 0, 50: 0}
    expected_total = 0
    top1 = 0
    for rel, expected in EXPECTED_LABELS.items():
        labels = tagger.detect_labels(load(root / rel), min_confidence=0)
        leaves = [lb for lb in labels if lb.instances]
        names = {floor: {lb.name for lb in leaves if lb.confidence >= floor} for floor in (20, 50)}
        expected_total += len(expected)
        for floor in found_total:
            found_total[floor] += len(expected & names[floor])
        best = leaves[0].name if leaves else "-"
        top1 += best in expected
        others = sorted(names[20] - expected)
        scores = ", ".join(f"{lb.name} {lb.confidence:.0f}" for lb in leaves if lb.name in expected)
        rows.append(
            (
                rel.name,
                ", ".join(sorted(expected)),
                f"{len(expected & names[20])}/{len(expected)}",
                f"{len(expected & names[50])}/{len(expected)}",
                best,
                scores or "-",
                ", ".join(others) or "-",
            )
        )
    for rel in UNLABELLED:
        leaves = [lb for lb in tagger.detect_labels(load(root / rel)) if lb.instances]
        listed = ", ".join(f"{lb.name} {lb.confidence:.0f}" for lb in leaves) or "-"
        rows.append((rel.name, "(painting, not scored)", "", "", "", "", listed))
    header = (
        "photo",
        "expected",
        "found at 20 (default)",
        "found at 50",
        "top label",
        "confidence of expected",
        "other labels at 20",
    )
    summary = (
        f"Expected labels found: {found_total[20]}/{expected_total} at the default floor 20, "
        f"{found_total[50]}/{expected_total} at 50; top label correct on "
        f"{top1}/{len(EXPECTED_LABELS)} photos."
    )
    return table(header, rows) + "\n\n" + summary + "\n\n" + classifier_section(tagger, root)


def classifier_section(tagger: LocalBackend, root: Path) -> str:
    """The ImageNet classifier alone: the a-priori image label, what it adds, and the time of
    each label model per photo."""
    from facetrail.tagging.scenes import classifier_labels, imagenet_classes

    class_names = {c.name for c in imagenet_classes()}
    models = tagger.object_detector
    rows = []
    found = {20: 0, 50: 0}
    detector_ms: list[float] = []
    classifier_ms: list[float] = []
    for rel in (*EXPECTED_IMAGE_LABEL, *UNLABELLED):
        image = load(root / rel).pixels
        start = time.perf_counter()
        models.boxes(image)
        detector_ms.append((time.perf_counter() - start) * 1000.0)
        start = time.perf_counter()
        probabilities = models.classifier.predict(image)
        classifier_ms.append((time.perf_counter() - start) * 1000.0)
        labels = classifier_labels(probabilities, min_confidence=0)
        named = {lb.name: lb.confidence for lb in labels}
        classes = sorted(
            (lb for lb in labels if lb.name in class_names and lb.confidence >= 20),
            key=lambda lb: -lb.confidence,
        )
        listed = ", ".join(f"{lb.name} {lb.confidence:.0f}" for lb in classes) or "-"
        expected = EXPECTED_IMAGE_LABEL.get(rel)
        if expected is None:
            rows.append((rel.name, "(painting, not scored)", "", "", listed))
            continue
        confidence = named.get(expected, 0.0)
        for floor in found:
            found[floor] += confidence >= floor
        rows.append(
            (rel.name, expected, f"{confidence:.0f}", "yes" if confidence >= 20 else "no", listed)
        )
    header = ("photo", "expected image label", "its confidence", "found at 20", "classes at 20")
    n = len(EXPECTED_IMAGE_LABEL)
    summary = (
        f"Classifier alone: the expected image label found on {found[20]}/{n} photos at 20, "
        f"{found[50]}/{n} at 50. Median time per photo, warm: detector "
        f"{statistics.median(detector_ms):.0f} ms, classifier "
        f"{statistics.median(classifier_ms):.0f} ms."
    )
    return table(header, rows) + "\n\n" + summary


# -- text ---------------------------------------------------------------------------------------


def lines_text(found: Sequence[TextDetection]) -> str:
    return " ".join(d.text for d in found if d.type == "LINE")


def word_recall(read: str, truth: str) -> float:
    """Share of the truth's words read, ignoring order (rotated pages shuffle line order)."""
    have, want = Counter(normalise(read).split()), Counter(normalise(truth).split())
    return sum((have & want).values()) / max(1, sum(want.values()))


def text_section(tagger: LocalBackend, root: Path) -> str:
    rows = []
    for image_name, truth_name in PAGES:
        pages = root / OCR / "tesseract"
        truth = (pages / truth_name).read_text(encoding="utf-8")
        start = time.perf_counter()
        read = lines_text(tagger.detect_text(load(pages / image_name)))
        seconds = time.perf_counter() - start
        rows.append(
            (
                image_name,
                f"{char_accuracy(read, truth):.3f}",
                f"{word_accuracy(read, truth):.3f}",
                f"{word_recall(read, truth):.3f}",
                f"{seconds:.1f}",
            )
        )
    pages_table = table(
        ("page", "char accuracy", "word accuracy", "word recall (any order)", "seconds"), rows
    )

    words = root / OCR / "scene_words"
    with (words / "labels.csv").open(encoding="utf-8") as fh:
        truth_by_file = {r["file"]: r["text_visible_in_image"] for r in csv.DictReader(fh)}
    scene_rows = []
    exact = {"pipeline": 0, "single_line": 0}
    chars = {"pipeline": 0.0, "single_line": 0.0}
    for name, truth in truth_by_file.items():
        image = load(words / name)
        readings = {
            "pipeline": lines_text(tagger.detect_text(image)),
            "single_line": lines_text(tagger.text_reader.predict(image.pixels, single_line=True)),
        }
        for mode, text in readings.items():
            exact[mode] += normalise(text).lower() == truth.lower()
            chars[mode] += char_accuracy(text.lower(), truth.lower())
        scene_rows.append(
            (name, truth, readings["pipeline"] or "-", readings["single_line"] or "-")
        )
    n = len(truth_by_file)
    scene_table = table(("crop", "visible text", "pipeline", "single_line=True"), scene_rows)
    summary = (
        f"Scene-word crops (case-insensitive exact match): pipeline {exact['pipeline']}/{n} "
        f"(mean char accuracy {chars['pipeline'] / n:.3f}), single_line "
        f"{exact['single_line']}/{n} ({chars['single_line'] / n:.3f})."
    )
    return (
        pages_table + "\n\n" + scene_table + "\n\n" + summary + "\n\n" + sroie_summary(tagger, root)
    )


def sroie_summary(tagger: LocalBackend, root: Path, limit: int = 20) -> str:
    """Word recall (any order) on the first ``limit`` SROIE receipts, read now and as before."""
    folder = root / SROIE
    with (folder / "index.csv").open(encoding="utf-8") as fh:
        receipts = list(csv.DictReader(fh))[:limit]
    reader = tagger.text_reader
    previous = PreviousTextReader(reader.files, threads=reader.threads)
    recall: dict[str, list[float]] = {"now": [], "before": []}
    for receipt in receipts:
        rows = (folder / receipt["box_transcripts"]).read_text(encoding="utf-8").splitlines()
        truth = " ".join(r.split(",", 8)[8] for r in rows if r.count(",") >= 8)
        image = load(folder / receipt["image"])
        recall["now"].append(word_recall(lines_text(tagger.detect_text(image)), truth))
        before = previous.predict(image.pixels.convert("RGB"))
        recall["before"].append(word_recall(lines_text(before), truth))
    return (
        f"SROIE receipts (first {len(receipts)}), mean word recall in any order: "
        f"{statistics.mean(recall['now']):.4f}, with text as before "
        f"{statistics.mean(recall['before']):.4f}."
    )


# -- moderation ---------------------------------------------------------------------------------


def moderation_section(tagger: LocalBackend, root: Path) -> str:
    """P(nsfw) over every photo in the shared data: all negatives (there are no positives)."""
    paths = sorted(
        p
        for folder in ("deepface", "face_recognition", "dlib")
        for p in (root / folder).rglob("*")
        if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
    )
    scores = []
    for path in paths:
        try:
            image = load(path)
        except Exception as exc:  # a deliberately odd file in the sets: skip it, say so
            log(f"moderation: skipped {path.name} ({exc})")
            continue
        scores.append(tagger.nsfw_classifier.predict(image.pixels))
    scores.sort()
    flagged = sum(s >= 0.5 for s in scores)
    p99 = scores[min(len(scores) - 1, int(0.99 * len(scores)))]
    return (
        f"Moderation on {len(scores)} ordinary photos (faces, animals, cars; no positives "
        f"exist in the data): max P(nsfw) {scores[-1]:.4f}, 99th percentile {p99:.4f}, "
        f"median {statistics.median(scores):.4f}; flagged at the default 50: {flagged}."
    )


# -- main ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tagging", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_ROOT, help="shared data root")
    parser.add_argument("--threads", type=int, default=2, help="inference threads")
    parser.add_argument("--deepface", type=int, default=20, help="deepface photos in speed set")
    parser.add_argument("--warmup", type=int, default=2, help="untimed photos first")
    parser.add_argument("--only", default="speed,labels,text,moderation", help="sections to run")
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="also measure throughput with this many worker processes of --process-threads",
    )
    parser.add_argument("--process-threads", type=int, default=1)
    args = parser.parse_args(argv)
    sections = {s.strip() for s in args.only.split(",")}
    settings = Settings.from_env(threads=args.threads)
    tagger = LocalBackend(settings)
    root: Path = args.data
    out = [
        f"Machine: {os.cpu_count()} CPU cores, {args.threads} inference threads, one process.",
    ]
    if "speed" in sections:
        photos = [root / p for p in (*EXPECTED_LABELS, *UNLABELLED)]
        deepface = sorted(p for p in (root / DEEPFACE).glob("*.jpg"))[: args.deepface]
        images = [load(p) for p in (*photos, *deepface)]
        out.append(speed_table(speed(tagger, images, args.warmup), len(images)))
        if args.processes:
            rates = parallel_speed(
                [*photos, *deepface], args.processes, args.process_threads, args.warmup
            )
            out.append(parallel_table(rates, args.processes, args.process_threads))
    if "labels" in sections:
        log("labels")
        out.append(labels_section(tagger, root))
    if "text" in sections:
        log("text")
        out.append(text_section(tagger, root))
    if "moderation" in sections:
        log("moderation")
        out.append(moderation_section(tagger, root))
    print("\n\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
