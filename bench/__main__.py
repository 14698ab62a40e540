"""``python -m bench``: facetrail's local backend against face_recognition, in one run.

Prints a markdown table on stdout (progress goes to stderr). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from bench import datasets, evaluate, throughput
from bench.report import SECTIONS, Results, build_rows, render
from bench.systems import System

T = TypeVar("T")


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default: all of {','.join(SECTIONS)})",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="use at most N pairs / probes / detection images / throughput photos (smoke runs)",
    )
    parser.add_argument("--data", type=Path, default=datasets.DEFAULT_ROOT, help="shared data root")
    parser.add_argument(
        "--warmup", type=int, default=4, help="untimed photos before the throughput pass"
    )
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    args.sections = [s for s in SECTIONS if s in sections]
    return args


class Plan:
    """The data each section runs on, cut to ``limit`` items, and how to describe it."""

    def __init__(self, root: Path, limit: int | None) -> None:
        pairs, self.pair_rows = datasets.load_pairs(root)
        self.pairs = pairs[:limit]
        split = datasets.identity_split(root)
        self.split = datasets.IdentitySplit(split.enroll, split.probes[:limit], split.clusters)
        self.boxed = datasets.load_detection_set(root)[:limit]
        self.photos = datasets.throughput_images(root)[:limit]

    def measured_on(self) -> dict[str, str]:
        same = sum(p.same for p in self.pairs)
        boxes = sum(len(i.boxes) for i in self.boxed)
        return {
            "verification": f"{len(self.pairs)} deepface pairs ({same} same, "
            f"{len(self.pairs) - same} different)",
            "identification": f"{len(self.split.probes)} held-out deepface photos; "
            f"{len(self.split.enroll)} enrolled ({self.split.clusters} clusters x 2)",
            "detection": f"dlib testing.xml: {len(self.boxed)} images, {boxes} boxes",
            "throughput": f"{len(self.photos)} photos (deepface + face_recognition examples), "
            f"{os.cpu_count()} cores",
        }


def attempt(results: Results, section: str, run: Callable[[], T]) -> T | None:
    """Run one section; a crash is recorded against that section and the run goes on."""
    start = time.perf_counter()
    try:
        value = run()
    except Exception as exc:
        results.errors[section] = f"{type(exc).__name__}: {exc}"
        log(f"{results.label} {section} FAILED:\n{traceback.format_exc()}")
        return None
    log(f"{results.label} {section}: {time.perf_counter() - start:.1f}s")
    return value


def run_accuracy(system: System, results: Results, plan: Plan, sections: list[str]) -> None:
    results.rule = system.rule
    if "verification" in sections:
        results.verification = attempt(
            results, "verification", lambda: evaluate.verification(system, plan.pairs)
        )
    if "identification" in sections:
        results.identification = attempt(
            results, "identification", lambda: evaluate.identification(system, plan.split)
        )
    if "detection" in sections:
        results.detection = attempt(
            results, "detection", lambda: evaluate.detection(system, plan.boxed)
        )


def run_facetrail(results: Results, plan: Plan, sections: list[str]) -> None:
    accuracy_sections = [s for s in sections if s != "throughput"]
    if not accuracy_sections:
        return
    try:
        from bench.facetrail_side import FacetrailSide
    except ImportError as exc:
        for section in accuracy_sections:
            results.errors[section] = f"facetrail not importable: {exc}"
        log(f"facetrail not importable: {exc}")
        return
    with tempfile.TemporaryDirectory(prefix="facetrail-bench-home-") as home:
        side = attempt(results, "setup", lambda: FacetrailSide(Path(home)))
        if side is None:
            for section in accuracy_sections:
                results.errors[section] = results.errors["setup"]
            return
        run_accuracy(side, results, plan, accuracy_sections)


def run_throughput(results: Results, system: str, plan: Plan, warmup: int) -> None:
    results.throughput = attempt(
        results,
        "throughput",
        lambda: throughput.measure(system, plan.photos, plan.split.enroll, warmup=warmup),
    )


def notes(plan: Plan, ours: Results, theirs: Results, sections: list[str]) -> list[str]:
    out = [
        f"Decision rules: {ours.label} `{ours.rule or 'n/a'}` (0-100 scale), "
        f"{theirs.label} `{theirs.rule or 'n/a'}` (Euclidean distance).",
    ]
    if "verification" in sections:
        out.append(
            f"Verification: {plan.pair_rows} rows of master.csv + face-recognition-pivot.csv, "
            f"{len(plan.pairs)} unique pairs used; largest face of the first photo against every "
            "face of the second, best match counts. No face = wrong; for AUC it scores lowest."
        )
    if "identification" in sections:
        out.append(
            "Identification: enrolled the first 2 photos of each identities.csv cluster "
            "(sorted file names); the largest face of each other photo must be named with its "
            "cluster; unknown or no face = wrong."
        )
    if "detection" in sections:
        out.append(
            "Detection: one-to-one greedy matching at IoU >= 0.5. Some background faces in these "
            "photos are not boxed, so a few 'false' detections may be real faces: precision is a "
            "lower bound. The boxes follow dlib's (square) convention."
        )
    if "throughput" in sections:
        out.append(
            "Throughput: each system in its own subprocess, one after the other; gallery = the "
            "identification enrollment photos; untimed warm-up on the first photos; "
            f"{ours.label} through its identify job (in-process, SQLite), the baseline doing "
            "locations + encodings + nearest match per face."
        )
    for results in (ours, theirs):
        if results.verification:
            v = results.verification
            out.append(
                f"{results.label} verification errors: {v.false_accepts} false accepts, "
                f"{v.false_rejects} false rejects, {v.no_face} pairs without a face."
            )
        ident = results.identification
        if ident and (ident.enroll_failures or ident.failed):
            out.append(
                f"{results.label} identification: {ident.enroll_failures} enrollment photos "
                f"not enrolled, {ident.failed} held-out photos failed (counted wrong); "
                f"first: {ident.first_error}"
            )
        if results.throughput and results.throughput.failed_images:
            out.append(
                f"{results.label}: {results.throughput.failed_images} throughput photos failed "
                f"(not counted as identified; first: {results.throughput.first_error})."
            )
        out += [f"{results.label} {s} error: {e}" for s, e in results.errors.items()]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = Plan(args.data, args.limit)
    ours, theirs = Results("facetrail"), Results("face_recognition")

    from bench.baseline import Baseline

    run_accuracy(Baseline(), theirs, plan, args.sections)
    run_facetrail(ours, plan, args.sections)
    if "throughput" in args.sections:
        run_throughput(ours, "facetrail", plan, args.warmup)
        run_throughput(theirs, "baseline", plan, args.warmup)

    print(render(build_rows(args.sections, plan.measured_on()), ours, theirs))
    print()
    for line in notes(plan, ours, theirs, args.sections):
        print(f"- {line}")
    return 1 if ours.errors or theirs.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
