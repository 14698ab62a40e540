"""facetrail's identification throughput at several checkouts of its code, alternately, in one run.

``python -m bench.versions [--rounds N] NAME=PATH ...`` runs the throughput section's facetrail
child (``python -m bench.throughput facetrail``, see ``bench/throughput.py``) from each checkout
in turn, with that checkout first on ``PYTHONPATH`` and the same venv, model files, photos and
gallery, and prints one row per round. Rounds alternate the order (A B C, C B A, ...) so that a
machine getting busier or quieter weighs on every checkout alike; CPU time per image (all
threads) is steadier than images/s on a shared machine, so it is the figure to compare. A
checkout is any folder with this ``bench`` package of that time, e.g. one made with
``git worktree add --detach ../old <commit>``; the same checkout may be named twice with other
settings (``--env new-rf:FACETRAIL_DETECTOR=retinaface``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import datasets
from bench.plan import Plan
from bench.throughput import Throughput


def measure_at(
    tree: Path, spec: Path, out: Path, timeout: float, extra_env: dict[str, str]
) -> Throughput:
    """The facetrail throughput child run from ``tree``'s code (with ``extra_env`` set)."""
    env = dict(os.environ, PYTHONPATH=str(tree), **extra_env)
    command = [sys.executable, "-m", "bench.throughput", "facetrail", str(spec), str(out)]
    done = subprocess.run(
        command, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"{tree}: child exited {done.returncode}:\n{done.stderr[-2000:]}")
    return Throughput(**json.loads(out.read_text()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.versions", description=__doc__)
    parser.add_argument("trees", nargs="+", help="NAME=PATH of each checkout")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over every checkout")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE",
        help="a variable set for one checkout's runs, e.g. new:FACETRAIL_DETECTOR=retinaface",
    )
    parser.add_argument("--data", type=Path, default=datasets.DEFAULT_ROOT)
    parser.add_argument("--limit", type=int, default=None, help="at most N photos")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2, help="timed passes; the fastest counts")
    args = parser.parse_args(argv)
    trees = [
        (name, Path(path).resolve()) for name, _, path in (t.partition("=") for t in args.trees)
    ]
    envs: dict[str, dict[str, str]] = {name: {} for name, _ in trees}
    for item in args.env:
        name, _, assignment = item.partition(":")
        variable, _, value = assignment.partition("=")
        envs[name][variable] = value
    plan = Plan(args.data, args.limit)
    spec_data = {
        "images": [str(p) for p in plan.photos],
        "enroll": [[str(item.path), item.label] for item in plan.split.enroll],
        "warmup": args.warmup,
        "repeat": args.repeat,
    }
    cpu: dict[str, list[float]] = {name: [] for name, _ in trees}
    print("| round | checkout | images/s | CPU ms per image | faces | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="facetrail-bench-versions-") as tmp:
        spec = Path(tmp) / "spec.json"
        spec.write_text(json.dumps(spec_data))
        for round_no in range(args.rounds):
            for name, tree in trees if round_no % 2 == 0 else trees[::-1]:
                out = Path(tmp) / f"{name}-{round_no}.json"
                m = measure_at(tree, spec, out, timeout=1800, extra_env=envs[name])
                cpu[name].append(m.cpu_ms_per_image)
                print(
                    f"| {round_no + 1} | {name} | {m.images_per_s:.2f} | "
                    f"{m.cpu_ms_per_image:.1f} | {m.faces} | {m.peak_rss_kib / 1024:.0f} |",
                    flush=True,
                )
    print()
    first = trees[0][0]
    for name, values in cpu.items():
        median = statistics.median(values)
        ratio = median / statistics.median(cpu[first])
        print(f"- {name}: median {median:.1f} CPU ms per image, {ratio:.2f}x {first}'s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
