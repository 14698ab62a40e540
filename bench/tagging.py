"""``python -m bench.tagging``: speed and accuracy of image tagging (labels, text, moderation).

Prints markdown tables on stdout (progress on stderr); docs/tagging.md records a run.

* Speed: the labelled non-face photos plus the first deepface photos by name, decoded and
  tagged with labels, text and moderation by worker processes (``bench/tagging_worker.py``,
  the path a tag job takes) in each ``--layouts`` of processes x inference threads; CPU time
  per image by phase (all threads of all processes) and images per second. With
  ``--baseline REV``, the code of that git revision runs beside this checkout's, alternately.
* Compare: each code's text accuracy on tesseract's pages, the first SROIE receipts and the
  scene-word crops, and on how many speed photos the two codes' results are identical.
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
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.layouts import THIS, Code, Layout, alternating, baseline_code
from bench.throughput import busy_cpu_seconds
from facetrail.backends.local.backend import LocalBackend
from facetrail.images import LoadedImage, load_image
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


def speed_photos(root: Path, deepface: int = 20) -> list[Path]:
    """The labelled non-face photos, the painting, then the first ``deepface`` deepface photos
    by name (330x512 up to 4352x2903, most with faces, little text)."""
    photos = [root / p for p in (*EXPECTED_LABELS, *UNLABELLED)]
    return photos + sorted(p for p in (root / DEEPFACE).glob("*.jpg"))[:deepface]


WORKER = Path(__file__).with_name("tagging_worker.py")
ALL_OPS = ("labels", "text", "moderation")


def start_worker(code: Code, mode: str, photos: Sequence[Path], **options: object) -> Any:
    """``bench/tagging_worker.py`` (this checkout's script) on ``code``'s facetrail."""
    flags = [f"--{k}={v}" for k, v in options.items()]
    return subprocess.Popen(
        [sys.executable, str(WORKER), mode, *flags, *map(str, photos)],
        cwd=code.root,
        env=code.env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@dataclass(frozen=True)
class Run:
    """One timed pass of every photo through ``layout``'s processes."""

    code: str
    layout: Layout
    photos: int
    wall: float  # seconds from "go" to the last process done
    cpu: dict[str, float]  # CPU seconds per phase (decode, each operation), all processes
    peak_rss_kib: int  # the largest process's
    others_cpu: float  # CPU seconds other processes on the machine used meanwhile

    @property
    def images_per_second(self) -> float:
        return self.photos / self.wall

    @property
    def cpu_ms(self) -> float:
        return 1000.0 * sum(self.cpu.values()) / self.photos


def timed_run(
    code: Code, photos: Sequence[Path], layout: Layout, ops: Sequence[str], warmup: int
) -> Run:
    """Every photo once, split across ``layout.processes`` workers of ``layout.threads``
    inference threads; timed from when all have loaded their models."""
    shares = [list(photos[i :: layout.processes]) for i in range(layout.processes)]
    workers = [
        start_worker(code, "time", share, threads=layout.threads, ops=",".join(ops), warmup=warmup)
        for share in shares
    ]
    try:
        for w in workers:
            if w.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{code.label} worker failed before timing")
        busy = busy_cpu_seconds()
        start = time.perf_counter()
        for w in workers:
            w.stdin.write("go\n")
            w.stdin.flush()
        reports = [json.loads(w.stdout.readline()) for w in workers]
        wall = time.perf_counter() - start
        busy = busy_cpu_seconds() - busy
    finally:
        for w in workers:
            w.stdin.close()
            w.wait(timeout=60)
    cpu = {phase: sum(r["cpu"][phase] for r in reports) for phase in reports[0]["cpu"]}
    return Run(
        code=code.label,
        layout=layout,
        photos=len(photos),
        wall=wall,
        cpu=cpu,
        peak_rss_kib=max(r["peak_rss_kib"] for r in reports),
        others_cpu=max(0.0, busy - sum(cpu.values())),
    )


def speed(
    codes: Sequence[Code],
    photos: Sequence[Path],
    layouts: Sequence[Layout],
    ops: Sequence[str],
    rounds: int,
    warmup: int,
) -> list[Run]:
    """Every layout for every code, in rounds; within a round the codes alternate and the
    order flips each round (A B, B A, ...), so drifting load falls on both alike."""
    runs: list[Run] = []
    for r in range(rounds):
        for layout in layouts:
            for code in alternating(codes, r):
                run = timed_run(code, photos, layout, ops, warmup)
                log(
                    f"round {r + 1} {layout} {code.label}: {run.images_per_second:.2f} images/s, "
                    f"{run.cpu_ms:.0f} CPU ms/image, others {run.others_cpu:.0f} CPU s"
                )
                runs.append(run)
    return runs


def speed_table(runs: Sequence[Run], ops: Sequence[str], cores: int) -> str:
    """Medians over rounds, per layout and code. "images/s if alone" is the cores divided by
    the CPU time per image: what the layout would do on an otherwise idle machine, if its
    processes kept every core busy."""
    rows = []
    keys = list(dict.fromkeys((run.layout, run.code) for run in runs))
    for layout, code in keys:
        mine = [run for run in runs if run.layout == layout and run.code == code]
        phases = {
            phase: statistics.median(1000.0 * run.cpu[phase] / run.photos for run in mine)
            for phase in ("decode", *ops)
        }
        cpu_ms = statistics.median(run.cpu_ms for run in mine)
        rate = statistics.median(run.images_per_second for run in mine)
        rows.append(
            (
                str(layout),
                code,
                f"{cpu_ms:.0f}",
                *(f"{phases[p]:.0f}" for p in phases),
                f"{cores * 1000.0 / cpu_ms:.2f}",
                f"{rate:.2f}",
                f"{statistics.median(run.others_cpu / run.wall for run in mine):.1f}",
                f"{max(run.peak_rss_kib for run in mine) / 1024:.0f}",
            )
        )
    header = (
        "processes x threads",
        "code",
        "CPU ms/image",
        "decode",
        *ops,
        f"images/s if alone ({cores} cores)",
        "images/s measured",
        "cores busy with other work",
        "peak RSS per process, MB",
    )
    rounds = len(runs) // max(1, len(keys))
    return f"Speed, {runs[0].photos} photos, median of {rounds} round(s):\n\n" + table(header, rows)


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
    return pages_table + "\n\n" + scene_table + "\n\n" + summary


# -- the same photos through the baseline's code and this one -----------------------------------


def code_results(code: Code, photos: Sequence[Path], threads: int) -> dict[str, dict[str, Any]]:
    """photo -> its labels, text and moderation results, as ``code`` gives them."""
    worker = start_worker(code, "results", photos, threads=threads, ops=",".join(ALL_OPS))
    out, _ = worker.communicate()
    if worker.returncode != 0:
        raise RuntimeError(f"{code.label}: results worker exited {worker.returncode}")
    return {row["photo"]: row["results"] for row in map(json.loads, out.splitlines())}


def text_of(entries: Sequence[dict[str, Any]]) -> str:
    return " ".join(e["DetectedText"] for e in entries if e.get("Type") == "LINE")


def sroie_receipts(root: Path, limit: int) -> list[tuple[Path, str]]:
    """(image, its transcribed words) for the first ``limit`` SROIE receipts."""
    folder = root / SROIE
    with (folder / "index.csv").open(encoding="utf-8") as fh:
        receipts = list(csv.DictReader(fh))[:limit]
    out = []
    for receipt in receipts:
        rows = (folder / receipt["box_transcripts"]).read_text(encoding="utf-8").splitlines()
        truth = " ".join(r.split(",", 8)[8] for r in rows if r.count(",") >= 8)
        out.append((folder / receipt["image"], truth))
    return out


def compare_section(
    codes: Sequence[Code], speed_photos: Sequence[Path], root: Path, threads: int, sroie: int
) -> str:
    """Accuracy of each code on the OCR sets, and whether the codes agree on the speed photos."""
    pages = [
        (root / OCR / "tesseract" / page, (root / OCR / "tesseract" / truth).read_text("utf-8"))
        for page, truth in PAGES
    ]
    receipts = sroie_receipts(root, sroie)
    words = root / OCR / "scene_words"
    with (words / "labels.csv").open(encoding="utf-8") as fh:
        crops = [(words / r["file"], r["text_visible_in_image"]) for r in csv.DictReader(fh)]
    photos = [*speed_photos, *(p for p, _ in pages), *(p for p, _ in receipts)]
    photos += [p for p, _ in crops]
    results = {}
    for code in codes:
        log(f"results of {code.label}")
        results[code.label] = code_results(code, photos, threads)
    rows = []
    for code in codes:
        got = results[code.label]
        page_chars = [char_accuracy(text_of(got[str(p)]["text"]), t) for p, t in pages]
        recall = [word_recall(text_of(got[str(p)]["text"]), t) for p, t in receipts]
        exact = sum(normalise(text_of(got[str(p)]["text"])).lower() == t.lower() for p, t in crops)
        rows.append(
            (
                code.label,
                " / ".join(f"{c:.3f}" for c in page_chars),
                f"{statistics.mean(recall):.4f}",
                f"{exact}/{len(crops)}",
            )
        )
    header = (
        "code",
        "tesseract pages, char accuracy (" + ", ".join(p for p, _ in PAGES) + ")",
        f"SROIE receipts (first {len(receipts)}), mean word recall in any order",
        "scene-word crops read exactly",
    )
    out = table(header, rows)
    if len(codes) == 2:
        before, now = (results[c.label] for c in codes)
        same = {
            op: sum(before[str(p)][op] == now[str(p)][op] for p in speed_photos) for op in ALL_OPS
        }
        listed = ", ".join(f"{op} {n}/{len(speed_photos)}" for op, n in same.items())
        changed = [
            f"{Path(p).name}: {text_of(before[str(p)]['text'])!r} -> "
            f"{text_of(now[str(p)]['text'])!r}"
            for p in photos
            if before[str(p)]["text"] != now[str(p)]["text"]
        ]
        out += (
            f"\n\nSpeed photos whose results are identical in both codes: {listed}."
            f"\n\nText that differs, of all {len(photos)} photos above: "
            + ("; ".join(changed) if changed else "none")
            + "."
        )
    return out


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
    parser.add_argument("--threads", type=int, default=2, help="inference threads (accuracy)")
    parser.add_argument("--deepface", type=int, default=20, help="deepface photos in speed set")
    parser.add_argument("--warmup", type=int, default=2, help="untimed photos per process first")
    parser.add_argument(
        "--only", default="speed,compare,labels,text,moderation", help="sections to run"
    )
    parser.add_argument(
        "--layouts",
        default="1x2,2x1,2x2",
        help="speed: worker processes x inference threads, comma-separated",
    )
    parser.add_argument("--rounds", type=int, default=2, help="speed: timed rounds")
    parser.add_argument(
        "--baseline",
        default="",
        help="a git revision whose code runs beside this checkout's (speed and compare)",
    )
    parser.add_argument("--sroie", type=int, default=20, help="compare: SROIE receipts read")
    args = parser.parse_args(argv)
    sections = {s.strip() for s in args.only.split(",")}
    settings = Settings.from_env(threads=args.threads)
    tagger = LocalBackend(settings)
    root: Path = args.data
    photos = speed_photos(root, args.deepface)
    cores = os.cpu_count() or 1
    out = [f"Machine: {cores} CPU cores, load average {os.getloadavg()[0]:.1f} at the start."]
    with tempfile.TemporaryDirectory(prefix="facetrail-baseline-") as tmp:
        codes = [THIS]
        if args.baseline:
            codes.insert(0, baseline_code(args.baseline, Path(tmp)))
        if "speed" in sections:
            layouts = Layout.parse_list(args.layouts)
            runs = speed(codes, photos, layouts, ALL_OPS, args.rounds, args.warmup)
            out.append(speed_table(runs, ALL_OPS, cores))
        if "compare" in sections:
            log("compare")
            out.append(compare_section(codes, photos, root, args.threads, args.sroie))
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
