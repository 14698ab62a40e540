"""Identification throughput, each system in its own subprocess so its peak RSS is its own.

Parent: :func:`measure` writes a job spec, runs ``python -m bench.throughput SYSTEM SPEC OUT``
and reads the result back. Child (``main``): enrolls a gallery, runs an untimed warm-up over the
first photos, then times ``repeat`` identification passes over every photo and keeps the fastest
(the machine is shared, so the fastest pass is the least disturbed one).

Peak memory is the child's ``VmHWM`` (high-water resident set of its own address space).
``getrusage().ru_maxrss`` is not used: Linux carries the forking parent's peak across exec.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench.datasets import Labelled

SYSTEMS = ("facetrail", "baseline")
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Pass:
    faces: int
    failed_images: int
    first_error: str = ""


@dataclass(frozen=True)
class Throughput:
    images: int  # photos identified successfully; failures still count in ``seconds``
    faces: int
    seconds: float  # wall time of the fastest timed pass
    cpu_seconds: float  # CPU time (all threads) of that pass
    peak_rss_kib: int
    failed_images: int
    warmup_images: int
    repeat: int
    first_error: str = ""
    # Filled in by the parent: the child's whole run, and CPU that other processes used meanwhile.
    run_seconds: float = 0.0
    other_cpu_seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")

    @property
    def faces_per_s(self) -> float:
        return self.faces / self.seconds if self.seconds > 0 else float("nan")

    @property
    def cpu_ms_per_image(self) -> float:
        return 1000 * self.cpu_seconds / self.images if self.images else float("nan")


def measure(
    system: str,
    images: Sequence[Path],
    enroll: Sequence[Labelled],
    *,
    warmup: int,
    repeat: int,
    timeout: float = 900,
) -> Throughput:
    """Run the child for ``system`` and return what it measured (raises if it failed)."""
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}")
    spec_data = {
        "images": [str(p) for p in images],
        "enroll": [[str(item.path), item.label] for item in enroll],
        "warmup": warmup,
        "repeat": repeat,
    }
    with tempfile.TemporaryDirectory(prefix="facetrail-bench-") as tmp:
        spec, out = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec.write_text(json.dumps(spec_data))
        command = [sys.executable, "-m", "bench.throughput", system, str(spec), str(out)]
        busy, children, start = busy_cpu_seconds(), children_cpu_seconds(), time.perf_counter()
        done = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
        )
        run_seconds = time.perf_counter() - start
        ours = children_cpu_seconds() - children
        others = max(0.0, busy_cpu_seconds() - busy - ours)
        if done.returncode != 0 or not out.exists():
            tail = (done.stderr or done.stdout)[-2000:]
            raise RuntimeError(f"{system} throughput child exited {done.returncode}:\n{tail}")
        measured = replace(
            Throughput(**json.loads(out.read_text())),
            run_seconds=run_seconds,
            other_cpu_seconds=others,
        )
    if measured.images == 0:
        raise RuntimeError(f"{system}: every photo failed ({measured.first_error})")
    return measured


def busy_cpu_seconds() -> float:
    """CPU time all processes on the machine have used since boot (Linux ``/proc/stat``)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:9]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# Child side ----------------------------------------------------------------------------------
Runner = Callable[[list[Path]], Pass]


def peak_rss_kib() -> int:
    """This process's resident-set high-water mark, in KiB (Linux ``/proc``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


@contextmanager
def baseline_runner(enroll: list[Labelled]) -> Iterator[Runner]:
    """face_recognition: locations + encodings + nearest enrolled encoding for every face."""
    from bench.baseline import Gallery, analyse

    gallery = Gallery()
    for item in enroll:
        faces = analyse(item.path)
        index = faces.largest()
        if index is not None:
            gallery.add(faces.encodings[index], item.label)

    def one_pass(paths: list[Path]) -> Pass:
        count = failed = 0
        error = ""
        for path in paths:
            try:
                faces = analyse(path)
            except OSError as exc:  # unreadable photo: a failed image, as in facetrail's report
                failed += 1
                error = error or f"{path.name}: {exc}"
                continue
            for encoding in faces.encodings:
                gallery.nearest(encoding)
            count += len(faces.boxes)
        return Pass(count, failed, error)

    yield one_pass


@contextmanager
def facetrail_runner(enroll: list[Labelled]) -> Iterator[Runner]:
    """facetrail: one identify job per pass through the public API (in-process, SQLite)."""
    from bench.facetrail_side import bench_settings, enroll_entries, failed_items, first_error
    from facetrail.api import Facetrail
    from facetrail.modelfiles import install_models

    with tempfile.TemporaryDirectory(prefix="facetrail-bench-home-") as home:
        settings = bench_settings(Path(home))
        install_models(settings, log=_stderr)
        api = Facetrail(settings)
        collection = "bench-throughput"
        api.enroll(collection, enroll_entries(enroll))

        def one_pass(paths: list[Path]) -> Pass:
            report = api.identify(collection, paths)
            faces = sum(len(image["faces"]) for image in report["images"])
            return Pass(faces, failed_items(report), first_error(report))

        yield one_pass


def timed(
    runner: Runner, images: list[Path], warmup: int, repeat: int
) -> tuple[Pass, float, float]:
    """Warm up, then the fastest of ``repeat`` passes: (result, wall s, CPU s)."""
    runner(images[:warmup])
    best: tuple[Pass, float, float] | None = None
    for _ in range(max(1, repeat)):
        cpu, start = time.process_time(), time.perf_counter()
        result = runner(images)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        if best is None or wall < best[1]:
            best = (result, wall, cpu)
    assert best is not None
    return best


def main(argv: Sequence[str]) -> int:
    system, spec_path, out_path = argv
    spec = json.loads(Path(spec_path).read_text())
    images = [Path(p) for p in spec["images"]]
    enroll = [Labelled(Path(p), label) for p, label in spec["enroll"]]
    warmup, repeat = int(spec["warmup"]), int(spec["repeat"])
    make_runner = facetrail_runner if system == "facetrail" else baseline_runner
    with make_runner(enroll) as runner:
        result, seconds, cpu_seconds = timed(runner, images, warmup, repeat)
    measured = Throughput(
        images=len(images) - result.failed_images,
        faces=result.faces,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        peak_rss_kib=peak_rss_kib(),
        failed_images=result.failed_images,
        warmup_images=min(warmup, len(images)),
        repeat=max(1, repeat),
        first_error=result.first_error,
    )
    Path(out_path).write_text(json.dumps(asdict(measured)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
