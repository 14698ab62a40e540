"""Identification throughput, each system in its own subprocess so its peak RSS is its own.

Peak memory is the child's ``VmHWM`` (high-water resident set of its own address space).
``getrusage().ru_maxrss`` is not used: Linux carries the forking parent's peak across exec.

Parent: :func:`measure` writes a job spec, runs ``python -m bench.throughput SYSTEM SPEC OUT``
and reads the result back. Child (``main``): enrolls a gallery, runs a short untimed warm-up
over the first photos, then times one identification pass over every photo.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.datasets import Labelled

SYSTEMS = ("facetrail", "baseline")
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Throughput:
    images: int  # photos identified successfully; failures still count in ``seconds``
    faces: int
    seconds: float
    peak_rss_kib: int
    failed_images: int
    warmup_images: int
    first_error: str = ""

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")

    @property
    def faces_per_s(self) -> float:
        return self.faces / self.seconds if self.seconds > 0 else float("nan")


@dataclass(frozen=True)
class Pass:
    faces: int
    failed_images: int
    first_error: str = ""


def measure(
    system: str,
    images: Sequence[Path],
    enroll: Sequence[Labelled],
    *,
    warmup: int,
    timeout: float = 900,
) -> Throughput:
    """Run the child for ``system`` and return what it measured (raises if it failed)."""
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}")
    with tempfile.TemporaryDirectory(prefix="facetrail-bench-") as tmp:
        spec, out = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec.write_text(
            json.dumps(
                {
                    "images": [str(p) for p in images],
                    "enroll": [[str(item.path), item.label] for item in enroll],
                    "warmup": warmup,
                }
            )
        )
        command = [sys.executable, "-m", "bench.throughput", system, str(spec), str(out)]
        done = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0 or not out.exists():
            tail = (done.stderr or done.stdout)[-2000:]
            raise RuntimeError(f"{system} throughput child exited {done.returncode}:\n{tail}")
        measured = Throughput(**json.loads(out.read_text()))
    if measured.images == 0:
        raise RuntimeError(f"{system}: every photo failed ({measured.first_error})")
    return measured


# Child side ----------------------------------------------------------------------------------
def peak_rss_kib() -> int:
    """This process's resident-set high-water mark, in KiB (Linux ``/proc``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _baseline(images: list[Path], enroll: list[Labelled], warmup: int) -> tuple[Pass, float]:
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

    one_pass(images[:warmup])
    start = time.perf_counter()
    result = one_pass(images)
    return result, time.perf_counter() - start


def _facetrail(images: list[Path], enroll: list[Labelled], warmup: int) -> tuple[Pass, float]:
    from bench.facetrail_side import (
        bench_settings,
        enroll_entries,
        failed_items,
        first_error,
    )
    from facetrail.api import Facetrail
    from facetrail.weights import install_models

    with tempfile.TemporaryDirectory(prefix="facetrail-bench-home-") as home:
        settings = bench_settings(Path(home))
        install_models(settings, log=_stderr)
        api = Facetrail(settings)
        collection = "bench-throughput"
        api.enroll(collection, enroll_entries(enroll))
        api.identify(collection, images[:warmup])
        start = time.perf_counter()
        report = api.identify(collection, images)
        seconds = time.perf_counter() - start
    faces = sum(len(image["faces"]) for image in report["images"])
    return Pass(faces, failed_items(report), first_error(report)), seconds


def main(argv: Sequence[str]) -> int:
    system, spec_path, out_path = argv
    spec = json.loads(Path(spec_path).read_text())
    images = [Path(p) for p in spec["images"]]
    enroll = [Labelled(Path(p), label) for p, label in spec["enroll"]]
    warmup = int(spec["warmup"])
    runner = _facetrail if system == "facetrail" else _baseline
    result, seconds = runner(images, enroll, warmup)
    measured = Throughput(
        images=len(images) - result.failed_images,
        faces=result.faces,
        seconds=seconds,
        peak_rss_kib=peak_rss_kib(),
        failed_images=result.failed_images,
        warmup_images=min(warmup, len(images)),
        first_error=result.first_error,
    )
    Path(out_path).write_text(json.dumps(asdict(measured)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
