"""``python -m bench``: facetrail's local backend against face_recognition, in one run.

Prints a markdown table on stdout (progress goes to stderr). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from bench import datasets, evaluate, throughput
from bench.baseline import Baseline
from bench.notes import notes
from bench.plan import Plan
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
    parser.add_argument(
        "--enroll-per-identity",
        type=int,
        default=2,
        help="identification: photos enrolled per identity (the rest are held out)",
    )
    parser.add_argument("--data", type=Path, default=datasets.DEFAULT_ROOT, help="shared data root")
    parser.add_argument(
        "--warmup", type=int, default=4, help="untimed photos before the throughput passes"
    )
    parser.add_argument(
        "--repeat", type=int, default=2, help="timed throughput passes; the fastest is reported"
    )
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    args.sections = [s for s in SECTIONS if s in sections]
    return args


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
    results.rule, results.version = system.rule, system.version
    if "verification" in sections:
        results.verification = attempt(
            results, "verification", lambda: evaluate.verification(system, plan.pairs)
        )
    if "identification" in sections:
        results.identification = attempt(
            results,
            "identification",
            lambda: evaluate.identification(system, plan.split, plan.open_split),
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


def run_throughput(results: Results, system: str, plan: Plan, warmup: int, repeat: int) -> None:
    results.throughput = attempt(
        results,
        "throughput",
        lambda: throughput.measure(
            system, plan.photos, plan.split.enroll, warmup=warmup, repeat=repeat
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = Plan(args.data, args.limit, args.enroll_per_identity)
    ours, theirs = Results("facetrail"), Results("face_recognition")

    run_accuracy(Baseline(), theirs, plan, args.sections)
    run_facetrail(ours, plan, args.sections)
    if "throughput" in args.sections:
        run_throughput(ours, "facetrail", plan, args.warmup, args.repeat)
        run_throughput(theirs, "baseline", plan, args.warmup, args.repeat)

    print(render(build_rows(args.sections, plan.measured_on()), ours, theirs))
    print()
    for line in notes(plan, ours, theirs, args.sections):
        print(f"- {line}")
    return 1 if ours.errors or theirs.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
