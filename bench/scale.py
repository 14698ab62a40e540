"""Workers at scale and re-runs: ``python -m bench.scale``.

``--detector NAME`` and ``--embedder NAME`` set the models of 1. and 4.

1. Identification throughput with 1 and with 2 worker processes sharing one Redis broker and one
   PostgreSQL database (each worker process uses one inference thread), in alternating rounds.
2. A re-run against a changed collection (reusing stored embeddings) beside the first run of the
   same batch, in-process on SQLite.
3. ``--only layouts``: tag jobs (every operation) and identify jobs through one `facetrail worker`
   for each layout of processes x inference threads, the code of ``--baseline`` beside this
   checkout's, alternating; CPU time of the worker's processes per image and images per second.
   ``--latency MS`` serves the photos over HTTP from this process, each response held back
   ``MS`` milliseconds (a CDN's round trips), and the jobs take their URLs instead of their
   paths. A layout ``2x1r2`` also holds 2 tasks in reserve per process (``FACETRAIL_READ_AHEAD``).
4. ``--only memory``: the peak resident memory of a worker's main and pool
   process after identifying the throughput section's photos.

Each figure is a ratio against a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench.layouts import THIS, Code, Layout, alternating, baseline_code, session_cpu_seconds
from bench.tagging import speed_photos
from bench.throughput import busy_cpu_seconds
from facetrail.api import Facetrail
from facetrail.images.scan import enroll_entries
from facetrail.migrate import upgrade
from facetrail.settings import Settings
from tests.procs import PrivateRedis, Worker, scratch_database
from tests.served import photo_server

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KNN = DATA / "face_recognition" / "examples" / "knn_examples"
PHOTOS = sorted(
    [p for p in (DATA / "face_recognition" / "examples").iterdir() if p.suffix in {".jpg", ".png"}]
    + list((KNN / "test").iterdir())
    + list((DATA / "face_recognition" / "tests" / "test_images").iterdir())
)
T = TypeVar("T")
MODELS = Path.home() / ".local/share/facetrail/models"


def shrink(photos: Sequence[Path], max_side: int, folder: Path) -> list[Path]:
    """``photos`` with their longest side at most ``max_side`` (copies of the larger ones)."""
    from PIL import Image

    out = []
    for i, photo in enumerate(photos):
        with Image.open(photo) as image:
            if max(image.size) <= max_side:
                out.append(photo)
                continue
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            target = folder / f"{i:02d}-{photo.name}"
            image.save(target, quality=92)  # PNG ignores quality
            out.append(target)
    return out


@contextlib.contextmanager
def slow_http(photos: Sequence[Path], latency: float) -> Iterator[list[str]]:
    """URLs of ``photos`` on a loopback HTTP server that waits ``latency`` seconds before each
    response, as a far server's round trips would; each photo's bytes are read once."""
    files = {f"/{i}{photo.suffix}": photo.read_bytes() for i, photo in enumerate(photos)}
    with photo_server(files, latency) as served:
        yield [served.url(name) for name in files]


def batch(n: int) -> list[str]:
    return [str(PHOTOS[i % len(PHOTOS)]) for i in range(n)]


def timed_job(
    ft: Facetrail,
    images: Sequence[str],
    kind: str = "identify",
    ops: Sequence[str] | None = None,
    collection: str = "bench",
) -> float:
    """Seconds from creating a job of ``kind`` (identify against ``collection``, or tag with
    ``ops``, all of them by default) on ``images`` until it has finished."""
    started = time.perf_counter()
    if kind == "tag":
        job = ft.tag(list(images), ops=ops, wait=False)
    else:
        job = ft.identify(collection, list(images), wait=False)
    report = ft.wait(job["job_id"], timeout=1800, poll=0.1)
    elapsed = time.perf_counter() - started
    if report["status"] != "succeeded":
        raise RuntimeError(f"job {report['job_id']} ended {report['status']}")
    return elapsed


@contextlib.contextmanager
def services(**fields: str) -> Iterator[tuple[Settings, Path]]:
    """A private Redis and a scratch, migrated PostgreSQL database: settings (``fields`` on top)
    that reach them, and a scratch folder."""
    with tempfile.TemporaryDirectory() as tmp, scratch_database("facetrail_bench") as url:
        folder = Path(tmp)
        redis = PrivateRedis(folder)
        redis.start()
        try:
            base = Settings(home=folder / "home", models_dir=MODELS, database_url=url)
            settings = base.with_(**fields)
            upgrade(settings)
            yield settings.with_(broker_url=redis.url), folder
        finally:
            redis.stop()


@contextlib.contextmanager
def enrolled_services(detector: str, embedder: str) -> Iterator[tuple[Settings, Path]]:
    """``services`` with collection "bench" enrolled from the knn examples with ``detector``
    and ``embedder``."""
    with services(detector=detector, embedder=embedder) as (settings, folder):
        # In this process: no worker listens yet.
        Facetrail(settings.with_(broker_url="")).enroll("bench", KNN / "train")
        yield settings, folder


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


def scale(
    n: int, rounds: int, detector: str = Settings.detector, embedder: str = Settings.embedder
) -> dict[str, float]:
    """Identification images/s with 1 and 2 workers; "bench" is enrolled with ``detector`` and
    ``embedder``, which the collection keeps, so the workers search it with those whatever
    their defaults."""
    with enrolled_services(detector, embedder) as (settings, folder):
        images = batch(n)
        one: list[float] = []
        two: list[float] = []
        for _ in range(rounds):
            one.append(workers_round(settings, folder, 1, images))
            two.append(workers_round(settings, folder, 2, images))
    return {"one": statistics.median(one), "two": statistics.median(two)}


@dataclass(frozen=True)
class JobRun:
    """One timed job through one `facetrail worker` of ``layout``."""

    kind: str
    code: str
    layout: Layout
    images: int
    wall: float
    cpu: float  # CPU seconds of the worker and its pool processes, all threads
    others: float  # CPU seconds the rest of the machine used meanwhile (this process included)


def layout_round(
    settings: Settings,
    folder: Path,
    kind: str,
    layout: Layout,
    code: Code,
    images: list[str],
    collection: str,
    enroll: bool,
) -> JobRun:
    """A job of ``kind`` on ``images`` through one worker of ``layout.processes`` processes
    with ``layout.threads`` inference threads each, running ``code``. Identify jobs search
    ``collection``, which that worker enrolls first when ``enroll``: each code enrolls its
    own, with its own default detector and embedder."""
    log = folder / f"{kind}-{layout}-{code.root.name}.log"
    worker = Worker(
        settings,
        log,
        concurrency=layout.processes,
        code=code.root,
        pool=layout.pool,
        FACETRAIL_FETCH_ALLOW_NETWORKS="127.0.0.0/8",  # slow_http's photos
        **layout.env(),
    )
    try:
        ft = Facetrail(settings)
        if kind == "identify" and enroll:
            # The collection pins the models the worker's code would choose by default.
            Facetrail(settings.with_(**code.model_defaults())).enroll(collection, KNN / "train")
        # Every pool process loads its models before timing (the pool takes items in turn).
        timed_job(ft, images[: 3 * layout.processes], kind, collection=collection)
        cpu, busy = session_cpu_seconds(worker.proc.pid), busy_cpu_seconds()
        seconds = timed_job(ft, images, kind, collection=collection)
        cpu, busy = session_cpu_seconds(worker.proc.pid) - cpu, busy_cpu_seconds() - busy
    finally:
        worker.stop()
    return JobRun(kind, code.label, layout, len(images), seconds, cpu, max(0.0, busy - cpu))


def layouts(
    kinds: Sequence[str],
    layout_list: Sequence[Layout],
    codes: Sequence[Code],
    rounds: int,
    identify_images: int,
    latency: float = 0.0,
) -> list[JobRun]:
    """Tag jobs (every operation, on bench.tagging's speed photos) and identify jobs through
    Redis and PostgreSQL, for each layout and code, alternating; with ``latency``, both take
    their photos' URLs on ``slow_http``."""
    tagged = speed_photos(DATA)
    runs: list[JobRun] = []
    with contextlib.ExitStack() as stack:
        settings, folder = stack.enter_context(services(fetch_allow_networks="127.0.0.0/8"))
        photos = {"tag": list(map(str, tagged)), "identify": batch(identify_images)}
        if latency:
            for kind, paths in photos.items():
                photos[kind] = stack.enter_context(slow_http(list(map(Path, paths)), latency))
        enrolled: set[str] = set()
        for r in range(rounds):
            for kind in kinds:
                for layout in layout_list:
                    for code in alternating(codes, r):
                        collection = f"bench-{codes.index(code)}"
                        enroll = kind == "identify" and collection not in enrolled
                        if enroll:
                            enrolled.add(collection)
                        args = (kind, layout, code, photos[kind], collection, enroll)
                        run = layout_round(settings, folder, *args)
                        print(
                            f"[bench.scale] round {r + 1} {kind} {layout} {code.label}: "
                            f"{run.images / run.wall:.2f} images/s, "
                            f"{1000 * run.cpu / run.images:.0f} CPU ms/image",
                            file=sys.stderr,
                            flush=True,
                        )
                        runs.append(run)
    return runs


def layouts_table(runs: Sequence[JobRun]) -> str:
    cores = os.cpu_count() or 1
    lines = [
        "| job | processes x threads | code | CPU ms/image | images/s if alone "
        f"({cores} cores) | images/s measured | cores busy with other work |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, layout, code in dict.fromkeys((r.kind, r.layout, r.code) for r in runs):
        mine = [r for r in runs if (r.kind, r.layout, r.code) == (kind, layout, code)]
        cpu_ms = statistics.median(1000 * r.cpu / r.images for r in mine)
        rate = statistics.median(r.images / r.wall for r in mine)
        others = statistics.median(r.others / r.wall for r in mine)
        lines.append(
            f"| {kind} | {layout} | {code} | {cpu_ms:.0f} | {cores * 1000 / cpu_ms:.2f} "
            f"| {rate:.2f} | {others:.1f} |"
        )
    return "\n".join(lines)


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


def worker_memory(detector: str, embedder: str = Settings.embedder) -> tuple[int, int]:
    """Peak resident MiB of a `facetrail worker`'s main and pool process (concurrency 1,
    Redis, PostgreSQL) after it identified the throughput section's 76 photos."""
    from bench.plan import Plan

    photos = [str(p) for p in Plan(DATA, None).photos]
    with enrolled_services(detector, embedder) as (settings, folder):
        worker = Worker(settings, folder / "worker.log")
        try:
            timed_job(Facetrail(settings), photos)
            pid = worker.proc.pid
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            return _peak_mib(pid), max(_peak_mib(int(child)) for child in children)
        finally:
            worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", choices=["workers", "rerun", "layouts", "memory"])
    parser.add_argument("--kinds", default="tag,identify", help="layouts: job kinds")
    parser.add_argument(
        "--layouts",
        default="1x2,2x1,2x2",
        help="layouts: processes x threads; 4tx1: 4 tasks on one process's thread pool",
    )
    parser.add_argument("--baseline", default="", help="layouts: a git revision run beside")
    parser.add_argument(
        "--detector", default=Settings.detector, help="workers and memory: the detector"
    )
    parser.add_argument(
        "--embedder", default=Settings.embedder, help="workers and memory: the embedder"
    )
    parser.add_argument(
        "--max-side", type=int, default=0, help="photos shrunk to at most this many pixels a side"
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="layouts: jobs take the photos' URLs on a local server that waits this many ms a "
        "response",
    )
    args = parser.parse_args()
    if args.max_side:
        shrunk = tempfile.TemporaryDirectory(prefix="facetrail-photos-")  # for the whole run
        PHOTOS[:] = shrink(PHOTOS, args.max_side, Path(shrunk.name))
    if args.only == "layouts":
        with tempfile.TemporaryDirectory(prefix="facetrail-baseline-") as tmp:
            codes = [THIS]
            if args.baseline:
                codes.insert(0, baseline_code(args.baseline, Path(tmp)))
            kinds = [k for k in args.kinds.split(",") if k]
            layout_list = Layout.parse_list(args.layouts)
            runs = layouts(kinds, layout_list, codes, args.rounds, args.images, args.latency / 1000)
        served = (
            f"; photos fetched over HTTP, {args.latency:g} ms a response" if args.latency else ""
        )
        print(
            f"Median of {args.rounds} round(s), load average {os.getloadavg()[0]:.1f} at the end"
            f"{served}."
        )
        print()
        print(layouts_table(runs))
        return
    if args.only == "memory":
        main_mib, pool_mib = worker_memory(args.detector, args.embedder)
        print(
            f"facetrail worker ({args.detector}, {args.embedder}): main process {main_mib} MiB, "
            f"pool process {pool_mib} MiB (peak resident sets after identifying 76 photos)"
        )
        return
    shrunk_to = f", shrunk to at most {args.max_side} px a side" if args.max_side else ""
    print(
        f"{len(PHOTOS)} distinct photos from face_recognition's examples{shrunk_to}, "
        f"cycled to {args.images}"
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
        s = scale(args.images, args.rounds, args.detector, args.embedder)
        print(
            f"| identification through Redis + PostgreSQL ({args.detector}, {args.embedder}; "
            f"images/s, median of {args.rounds}) "
            f"| 1 worker {s['one']:.2f} | 2 workers {s['two']:.2f} "
            f"| {s['two'] / s['one']:.2f}x |"
        )


if __name__ == "__main__":
    main()
