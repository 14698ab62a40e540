"""Workers at scale and re-runs: ``python -m bench.scale``.

1. Identification throughput with 1 and with 2 worker processes sharing one Redis broker and one
   PostgreSQL database (each worker process uses one inference thread), in alternating rounds.
2. A re-run against a changed collection (reusing stored embeddings) beside the first run of the
   same batch, in-process on SQLite.
3. ``--only memory [--detector NAME]``: the peak resident memory of a worker's main and pool
   process after identifying the throughput section's photos.

Each figure is a ratio against a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from facetrail.api import Facetrail
from facetrail.images.scan import enroll_entries
from facetrail.migrate import upgrade
from facetrail.settings import Settings
from tests.procs import PrivateRedis, Worker, scratch_database

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KNN = DATA / "face_recognition" / "examples" / "knn_examples"
PHOTOS = sorted(
    [p for p in (DATA / "face_recognition" / "examples").iterdir() if p.suffix in {".jpg", ".png"}]
    + list((KNN / "test").iterdir())
    + list((DATA / "face_recognition" / "tests" / "test_images").iterdir())
)
T = TypeVar("T")
MODELS = Path.home() / ".local/share/facetrail/models"


def batch(n: int) -> list[str]:
    return [str(PHOTOS[i % len(PHOTOS)]) for i in range(n)]


def timed_job(ft: Facetrail, images: list[str]) -> float:
    started = time.perf_counter()
    job = ft.identify("bench", images, wait=False)
    report = ft.wait(job["job_id"], timeout=1800, poll=0.1)
    elapsed = time.perf_counter() - started
    if report["status"] != "succeeded":
        raise RuntimeError(f"job {report['job_id']} ended {report['status']}")
    return elapsed


def workers_round(settings: Settings, folder: Path, count: int, images: list[str]) -> float:
    workers = [
        Worker(settings, folder / f"worker-{count}-{i}.log", FACETRAIL_THREADS="1")
        for i in range(count)
    ]
    try:
        ft = Facetrail(settings)
        timed_job(ft, batch(4 * count))  # every worker loads its models before timing
        return len(images) / timed_job(ft, images)
    finally:
        for w in workers:
            w.stop()


def scale(n: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, scratch_database("facetrail_bench") as url:
        folder = Path(tmp)
        redis = PrivateRedis(folder)
        redis.start()
        try:
            settings = Settings(home=folder / "home", models_dir=MODELS, database_url=url)
            upgrade(settings)
            Facetrail(settings).enroll("bench", KNN / "train")
            settings = settings.with_(broker_url=redis.url)
            images = batch(n)
            one: list[float] = []
            two: list[float] = []
            for _ in range(rounds):
                one.append(workers_round(settings, folder, 1, images))
                two.append(workers_round(settings, folder, 2, images))
        finally:
            redis.stop()
    return {"one": statistics.median(one), "two": statistics.median(two)}


def _cpu(run: Callable[[], T]) -> tuple[T, float]:
    """``run()`` and the CPU seconds this process spent on it (all threads)."""
    started = time.process_time()
    result = run()
    return result, time.process_time() - started


def rerun(n: int) -> dict[str, float]:
    """CPU seconds per image: a first run, a re-run after enrolling one more person, and a
    re-run after deleting one person, of the same batch in one process."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home", models_dir=MODELS)
        ft = Facetrail(settings)
        entries = enroll_entries(KNN / "train")
        ft.enroll("bench", [e for e in entries if e.external_id != "rose_leslie"])
        images = batch(n)
        ft.identify("bench", images[:4])  # load models before timing
        first, first_s = _cpu(lambda: ft.identify("bench", images))
        ft.enroll("bench", [e for e in entries if e.external_id == "rose_leslie"])
        enrolled, enrolled_s = _cpu(lambda: ft.rerun(first["job_id"]))
        ft.delete_person("bench", "alex_lacamoire")
        deleted, deleted_s = _cpu(lambda: ft.rerun(first["job_id"]))
    return {
        "first": 1000 * first_s / n,
        "enrolled": 1000 * enrolled_s / n,
        "enrolled_changes": len(enrolled["changes"]),
        "deleted": 1000 * deleted_s / n,
        "deleted_changes": len(deleted["changes"]),
    }


def _peak_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def worker_memory(detector: str) -> tuple[int, int]:
    """Peak resident MiB of a `facetrail worker`'s main and pool process (concurrency 1,
    Redis, PostgreSQL) after it identified the throughput section's 76 photos."""
    from bench.plan import Plan

    photos = [str(p) for p in Plan(DATA, None).photos]
    with tempfile.TemporaryDirectory() as tmp, scratch_database("facetrail_bench") as url:
        folder = Path(tmp)
        redis = PrivateRedis(folder)
        redis.start()
        try:
            settings = Settings(
                home=folder / "home", models_dir=MODELS, database_url=url, detector=detector
            )
            upgrade(settings)
            Facetrail(settings).enroll("bench", KNN / "train")
            settings = settings.with_(broker_url=redis.url)
            worker = Worker(settings, folder / "worker.log", FACETRAIL_DETECTOR=detector)
            try:
                timed_job(Facetrail(settings), photos)
                pid = worker.proc.pid
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                return _peak_mib(pid), max(_peak_mib(int(child)) for child in children)
            finally:
                worker.stop()
        finally:
            redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", choices=["workers", "rerun", "memory"])
    parser.add_argument("--detector", default="mtcnn", help="for --only memory")
    args = parser.parse_args()
    if args.only == "memory":
        main_mib, pool_mib = worker_memory(args.detector)
        print(
            f"facetrail worker ({args.detector}): main process {main_mib} MiB, pool process "
            f"{pool_mib} MiB (peak resident sets after identifying 76 photos)"
        )
        return
    print(
        f"{len(PHOTOS)} distinct photos from face_recognition's examples, cycled to {args.images}"
    )
    print()
    print("| measurement | baseline | measured | ratio |")
    print("|---|---|---|---|")
    if args.only in (None, "rerun"):
        r = rerun(args.images)
        for what in ("enrolled", "deleted"):
            label = "enrolling" if what == "enrolled" else "deleting"
            print(
                f"| re-run after {label} a person (CPU ms per image, "
                f"{int(r[what + '_changes'])} changes) | first run {r['first']:.1f} "
                f"| re-run {r[what]:.2f} | {r['first'] / r[what]:.0f}x faster |"
            )
    if args.only in (None, "workers"):
        s = scale(args.images, args.rounds)
        print(
            f"| identification through Redis + PostgreSQL (images/s, median of {args.rounds}) "
            f"| 1 worker {s['one']:.2f} | 2 workers {s['two']:.2f} "
            f"| {s['two'] / s['one']:.2f}x |"
        )


if __name__ == "__main__":
    main()
