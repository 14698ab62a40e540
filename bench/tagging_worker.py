"""One tagging worker process for ``bench.tagging``, run as a script so any checkout can be timed.

``bench.tagging`` starts it with ``PYTHONPATH`` (and the working directory) set to the code under
test: this checkout or the baseline's, exported from git. So it imports nothing from ``bench``
and uses only facetrail's public API, which both have: ``get_backend``, ``load_image`` and
``run_ops``, the path a tag job takes for each image.

    python bench/tagging_worker.py time --threads 1 --ops labels,text,moderation PHOTO...
        loads the models on the first --warmup photos, prints "ready", waits for a line on stdin,
        then decodes and tags every photo once and prints one JSON line: the CPU seconds of this
        process (all its threads) in decoding and in each operation, its wall time, its peak RSS.
    python bench/tagging_worker.py results --ops labels,text,moderation PHOTO...
        prints one JSON line per photo: the operations' Rekognition-shaped results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from facetrail.backends import get_backend
from facetrail.images import LoadedImage, load_image
from facetrail.settings import Settings
from facetrail.tagging.operations import run_ops

MAX_BYTES = 200 * 1024 * 1024
MAX_PIXELS = 200_000_000


def peak_rss_kib() -> int:
    """This process's resident-set high-water mark (VmHWM), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def load(path: str) -> LoadedImage:
    return load_image(path, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)


def time_photos(settings: Settings, paths: list[str], ops: list[str], warmup: int) -> None:
    backend = get_backend(settings, "local")
    for path in paths[:warmup]:  # model loading and first-run allocations, untimed
        run_ops(settings, backend, load(path), ops)
    print("ready", flush=True)
    sys.stdin.readline()
    cpu = {name: 0.0 for name in ("decode", *ops)}
    wall_start = time.perf_counter()
    for path in paths:
        start = time.process_time()
        image = load(path)
        cpu["decode"] += time.process_time() - start
        for op in ops:
            start = time.process_time()
            run_ops(settings, backend, image, [op])
            cpu[op] += time.process_time() - start
    wall = time.perf_counter() - wall_start
    report = {"photos": len(paths), "cpu": cpu, "wall": wall, "peak_rss_kib": peak_rss_kib()}
    print(json.dumps(report), flush=True)


def print_results(settings: Settings, paths: list[str], ops: list[str]) -> None:
    backend = get_backend(settings, "local")
    for path in paths:
        image = load(path)
        results: dict[str, Any] = run_ops(settings, backend, image, ops)
        print(json.dumps({"photo": path, "results": results}), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("time", "results"))
    parser.add_argument("photos", nargs="+")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ops", default="labels,text,moderation")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    settings = Settings.from_env(threads=args.threads)
    ops = [op for op in args.ops.split(",") if op]
    if args.mode == "time":
        time_photos(settings, args.photos, ops, args.warmup)
    else:
        print_results(settings, args.photos, ops)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
