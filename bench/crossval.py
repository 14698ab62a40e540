"""Identification over rotating splits: ``python -m bench.crossval``.

The main benchmark enrolls the first photos of each deepface cluster and identifies the rest: one
split, where a single probe moves top-1 by 2-3 points. Here every photo takes its turn: in round
``r`` each cluster enrolls ``k`` consecutive photos starting at position ``r`` (sorted file names,
wrapping around) and the others are probes; the open-set variant also rotates which third of the
clusters is never enrolled. Counts are summed over all rounds, for facetrail and the baseline on
the same splits. Round 0 is the main benchmark's split.

``--dataset celeba --rounds 1`` runs the same table on ``celeba_identities`` (in-the-wild CelebA
photos, 66 people): the first 1 or 2 photos of each person by file name enrolled, the rest probed.

``--shift 1`` has facetrail's detector look at every photo without its first row and column
(boxes and landmarks moved back; faces are aligned on the whole photo): how far a change no one
would see moves the table, the yardstick for differences between detectors. ``--shift 0,1,2,3
--no-baseline`` runs one draw per shift and sums them, with a line per draw: the table
docs/benchmarks.md compares pipelines by ("The deepface table over shifted photos").

The protocol (rounds, ``k``, what is counted) was fixed before it was first run; see
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import datasets
from bench.systems import System
from facetrail.inference.detector import Detection


def log(message: str) -> None:
    print(f"[crossval] {message}", file=sys.stderr, flush=True)


@dataclass
class Tally:
    """Decisions over every probe of every round: right, a wrong name, or unknown."""

    probes: int = 0
    right: int = 0
    wrong_name: int = 0  # named someone else (a stranger named at all counts here)
    unknown: int = 0  # left unknown (or no face) although enrolled
    no_face: int = 0  # probes where no face was found (enrolled or not)
    rounds: list[str] = field(default_factory=list)

    def add(
        self,
        predictions: Sequence[str | None],
        truths: Sequence[str | None],
        ranked_first: Sequence[str | None] = (),
    ) -> None:
        """``ranked_first`` (``None`` where no face was found) feeds the no-face count."""
        self.no_face += sum(1 for r in ranked_first if r is None)
        right = wrong = unknown = 0
        for predicted, truth in zip(predictions, truths, strict=True):
            if predicted == truth:
                right += 1
            elif predicted is None:
                unknown += 1
            else:
                wrong += 1
        self.probes += len(truths)
        self.right += right
        self.wrong_name += wrong
        self.unknown += unknown
        self.rounds.append(f"{right}/{len(truths)}")

    def merge(self, other: Tally) -> None:
        self.probes += other.probes
        self.right += other.right
        self.wrong_name += other.wrong_name
        self.unknown += other.unknown
        self.no_face += other.no_face

    @property
    def accuracy(self) -> float:
        return self.right / self.probes if self.probes else float("nan")


def run_rounds(
    system: System, root: Path, per_identity: int, rounds: int, dataset: str = "deepface"
) -> tuple[Tally, Tally]:
    """(closed set, open set) tallies for ``rounds`` rotations with ``per_identity`` enrolled."""
    closed, opened = Tally(), Tally()
    for rotation in range(rounds):
        split = datasets.identity_split(root, per_identity, rotation, dataset)
        outcome = system.identify(split.enroll, [p.path for p in split.probes])
        closed.add(outcome.predictions, [p.label for p in split.probes], outcome.ranked_first)
        open_split, strangers = datasets.open_set_split(
            root, per_identity, rotation=rotation, dataset=dataset
        )
        outcome = system.identify(open_split.enroll, [p.path for p in open_split.probes])
        opened.add(
            outcome.predictions,
            [None if p.label in strangers else p.label for p in open_split.probes],
            outcome.ranked_first,
        )
        log(
            f"{system.label} k={per_identity} round {rotation}: {closed.rounds[-1]} closed, "
            f"{opened.rounds[-1]} open"
        )
    return closed, opened


def row(name: str, ours: Tally, theirs: Tally | None) -> str:
    if theirs is None:
        return f"| {name} | {ours.probes} | {_counts(ours)} | - | - |"
    ratio = ours.accuracy / theirs.accuracy if theirs.accuracy else float("nan")
    return f"| {name} | {ours.probes} | {_counts(ours)} | {_counts(theirs)} | {ratio:.3f}x |"


def _counts(tally: Tally) -> str:
    return (
        f"{tally.accuracy:.1%} ({tally.right}; {tally.wrong_name} wrong names, "
        f"{tally.unknown} unknown, {tally.no_face} no face)"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.crossval", description=__doc__)
    parser.add_argument("--rounds", type=int, default=8, help="rotations (default 8)")
    parser.add_argument(
        "--enroll", default="1,2", help="photos enrolled per identity, comma-separated"
    )
    parser.add_argument("--data", type=Path, default=datasets.DEFAULT_ROOT)
    parser.add_argument(
        "--dataset",
        choices=sorted(datasets.IDENTITY_SETS),
        default="deepface",
        help="identification set: deepface identities.csv (default) or celeba_identities",
    )
    parser.add_argument(
        "--shift",
        type=_shifts,
        default=(0,),
        help="facetrail detects on each photo less its first N rows and columns (default 0); "
        "several, comma-separated (0,1,2,3), sum one draw per shift (with --no-baseline)",
    )
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="facetrail only (the baseline's column is left empty; face_recognition not needed)",
    )
    args = parser.parse_args(argv)
    if len(args.shift) > 1 and not args.no_baseline:
        # The baseline does not shift: summing its one draw N times would say nothing.
        parser.error("several --shift values compare facetrail's draws only: add --no-baseline")
    return args


def _shifts(text: str) -> tuple[int, ...]:
    try:
        shifts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of pixels: {text!r}"
        ) from None
    if not shifts or min(shifts) < 0 or len(set(shifts)) != len(shifts):
        raise argparse.ArgumentTypeError(f"want distinct pixel counts >= 0, got {text!r}")
    return shifts


@contextmanager
def shift_detection(pixels: int) -> Iterator[None]:
    """Within the block, the local pipeline detects on photos less their first ``pixels`` rows
    and columns, moving what it finds back into the photo's coordinates (this process only)."""
    if not pixels:
        yield
        return
    import numpy as np

    from facetrail.backends.local import pipeline

    detect = pipeline.FacePipeline.detect
    offset = np.array([pixels, pixels], np.float32)

    def shifted(self: pipeline.FacePipeline, rgb: Any) -> list[Detection]:
        cut = np.ascontiguousarray(pipeline.as_rgb_array(rgb)[pixels:, pixels:])
        return [
            replace(f, box=f.box + np.tile(offset, 2), landmarks=f.landmarks + offset)
            for f in detect(self, cut)
        ]

    pipeline.FacePipeline.detect = shifted  # type: ignore[method-assign]
    try:
        yield
    finally:
        pipeline.FacePipeline.detect = detect  # type: ignore[method-assign]


KINDS = ("closed set", "open set")
Setting = tuple[int, str]  # photos enrolled per identity, closed or open set


def run_settings(
    system: System, args: argparse.Namespace, counts: Sequence[int]
) -> dict[Setting, Tally]:
    """Each setting's tally over ``args.rounds`` rotations, for ``system``."""
    tallies: dict[Setting, Tally] = {}
    for k in counts:
        both = run_rounds(system, args.data, k, args.rounds, args.dataset)
        tallies.update(zip(((k, kind) for kind in KINDS), both, strict=True))
    return tallies


def draw_line(shift: int, cells: Sequence[Tally]) -> str:
    """One draw's row of the shifted-photos table: right per setting, then the pooled counts."""
    pooled = Tally()
    for cell in cells:
        pooled.merge(cell)
    rights = ", ".join(str(cell.right) for cell in cells)
    return (
        f"| {shift} px | {rights} | {pooled.right} of {pooled.probes} | {pooled.wrong_name} "
        f"| {pooled.unknown} |"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    counts = [int(k) for k in args.enroll.split(",") if k.strip()]
    settings = [(k, kind) for k in counts for kind in KINDS]
    # Imported here: the baseline needs face_recognition, which only ./dev bench installs.
    from bench.facetrail_side import FacetrailSide

    baseline = None
    if not args.no_baseline:
        from bench.baseline import Baseline

        baseline = Baseline()
    ours = {setting: Tally() for setting in settings}
    draws = []
    for shift in args.shift:
        # A fresh home per draw: nothing a draw stored about a photo is reused by the next.
        with (
            shift_detection(shift),
            tempfile.TemporaryDirectory(prefix="facetrail-crossval-") as home,
        ):
            facetrail = FacetrailSide(Path(home))
            draw = run_settings(facetrail, args, counts)
            version, rule = facetrail.version, facetrail.rule
        for setting, tally in draw.items():
            ours[setting].merge(tally)
        draws.append(draw_line(shift, [draw[setting] for setting in settings]))
    theirs = run_settings(baseline, args, counts) if baseline else None
    lines = [
        "| setting | probes | facetrail | face_recognition (baseline) | ratio |",
        "|---|---|---|---|---|",
    ]
    ours_all, theirs_all = Tally(), Tally()
    for setting in settings:
        k, kind = setting
        base = theirs[setting] if theirs else None
        lines.append(row(f"{k} enrolled, {kind}", ours[setting], base))
        ours_all.merge(ours[setting])
        if base is not None:
            theirs_all.merge(base)
    lines.append(row("all of the above", ours_all, theirs_all if theirs else None))
    shifts = ",".join(str(shift) for shift in args.shift)
    shifted = f", detecting on photos less {shifts} px" if args.shift != (0,) else ""
    summed = f" (sum of {len(args.shift)} draws)" if len(args.shift) > 1 else ""
    print(f"facetrail: {version}, rule {rule}{shifted}{summed}")
    if baseline:
        print(f"baseline: {baseline.version}, rule {baseline.rule}")
    print(
        f"{args.rounds} rotation(s) of the {args.dataset} identities, enrolled per identity: "
        f"{args.enroll}; unknown counts probes without a face too"
    )
    print()
    print("\n".join(lines))
    if len(draws) > 1:
        cells = "; ".join(f"{k} enrolled, {kind}" for k, kind in settings)
        print()
        print(f"| shift | right: {cells} | right | wrong names | unknown |")
        print("|---|---|---|---|---|")
        print("\n".join(draws))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
