"""Workers at scale and re-runs: ``python -m bench.scale``.

1. Identification throughput with 1 and with 2 worker processes sharing one Redis broker and one
   PostgreSQL database (each worker process uses one inference thread), in alternating rounds.
2. A re-run against a changed collection (reusing stored embeddings) beside the first run of the
   same batch, in-process on SQLite.

Each figure is a ratio against a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

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


def rerun(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home", models_dir=MODELS)
        ft = Facetrail(settings)
        entries = enroll_entries(KNN / "train")
        ft.enroll("bench", [e for e in entries if e.external_id != "rose_leslie"])
        images = batch(n)
        ft.identify("bench", images[:4])  # load models before timing
        started = time.perf_counter()
        first = ft.identify("bench", images)
        first_s = time.perf_counter() - started
        ft.enroll("bench", [e for e in entries if e.external_id == "rose_leslie"])
        started = time.perf_counter()
        changes = ft.rerun(first["job_id"])
        rerun_s = time.perf_counter() - started
    return {"first": n / first_s, "rerun": n / rerun_s, "changes": len(changes["changes"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", choices=["workers", "rerun"])
    args = parser.parse_args()
    print(
        f"{len(PHOTOS)} distinct photos from face_recognition's examples, cycled to {args.images}"
    )
    print()
    print("| measurement | baseline | measured | ratio |")
    print("|---|---|---|---|")
    if args.only in (None, "rerun"):
        r = rerun(args.images)
        print(
            f"| re-run after enrolling a person (images/s, {int(r['changes'])} changes) "
            f"| first run {r['first']:.2f} | re-run {r['rerun']:.2f} "
            f"| {r['rerun'] / r['first']:.1f}x |"
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
