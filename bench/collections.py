"""Collections of many faces: ``python -m bench.collections [--faces N ...]``.

For each size, side by side in one run, exact numpy search (``VectorIndex`` without a graph)
and the approximate index (usearch HNSW with exact re-ranking):

1. On synthetic faces shaped like real ones (``bench.synthetic``: clustered by person, with the
   same- and different-person cosine distributions measured on the Glint360k chips): build
   time, search p50/p95 per face, recall@1 against exact, and the index's memory.
2. Through the local backend's real path, on SQLite: the synthetic faces bulk-inserted as
   enrollment stores them (backend rows, our face and person records), plus the real people of
   face_recognition's ``knn_examples/train`` enrolled by an enroll job. Their test photos are
   identified by identify jobs (images/s, and whether every expected name is still found),
   one more real photo is enrolled by another backend instance (time until this one's next
   search sees it, applied as a delta), and the process's RSS is read (models included).

Progress goes to stderr, the markdown table to stdout.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select, update

from bench.synthetic import Generator, Matrix, Synthetic, measure, pair_distribution
from facetrail.api import Facetrail
from facetrail.backends import get_backend
from facetrail.backends.local.backend import LocalBackend
from facetrail.backends.local.pipeline import FacePipeline
from facetrail.db import session_scope
from facetrail.images import load_image
from facetrail.images.scan import enroll_entries
from facetrail.models import Collection, Face, LocalCollection, LocalFace, Person
from facetrail.services.records import bump_version
from facetrail.settings import Settings
from facetrail.vectors import VectorIndex

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KNN = DATA / "face_recognition" / "examples" / "knn_examples"
MODELS = Path.home() / ".local/share/facetrail/models"
EXPECTED = {
    "alex_lacamoire1.jpg": {"alex_lacamoire"},
    "johnsnow_test1.jpg": {"kit_harington"},
    "kit_with_rose.jpg": {"kit_harington", "rose_leslie"},
    "obama1.jpg": {"obama"},
    "obama_and_biden.jpg": {"obama", "biden"},
}
EXACT = 10**12  # a vector_exact_limit no collection reaches
MODES = {"exact": EXACT, "approximate": 0}
CHUNK = 20_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rss_mib() -> float:
    """This process's resident memory now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(seconds: Sequence[float]) -> tuple[float, float]:
    ms = np.array(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


@dataclass
class IndexFigures:
    build_s: float
    p50_ms: float
    p95_ms: float
    recall: float
    person_recall: float
    memory_mib: float


def index_figures(drawn: Synthetic, probes: Matrix) -> dict[str, IndexFigures]:
    labels = list(range(len(drawn.vectors)))
    out: dict[str, IndexFigures] = {}
    answers: dict[str, list[int]] = {}
    for mode, limit in MODES.items():
        gc.collect()
        before = rss_mib()
        started = time.perf_counter()
        index: VectorIndex[int] = VectorIndex(drawn.vectors.shape[1], exact_limit=limit)
        index.add(labels, drawn.vectors)
        build = time.perf_counter() - started
        memory = rss_mib() - before
        timings, top = [], []
        for probe in probes:
            started = time.perf_counter()
            found, _ = index.search(probe[None, :], 16)
            timings.append(time.perf_counter() - started)
            top.append(found[0][0])
        answers[mode] = top
        p50, p95 = percentiles(timings)
        pairs = list(zip(top, answers["exact"], strict=True))
        recall = float(np.mean([a == b for a, b in pairs]))
        # Whether the top face belongs to the person exact search's top face belongs to.
        person_recall = float(np.mean([drawn.owner[a] == drawn.owner[b] for a, b in pairs]))
        out[mode] = IndexFigures(build, p50, p95, recall, person_recall, memory)
        log(f"  index {mode}: build {build:.1f}s p50 {p50:.2f} p95 {p95:.2f} ms recall {recall}")
        del index
    return out


@dataclass
class PathFigures:
    search_p50_ms: float
    search_p95_ms: float
    images_per_s: float
    named_ok: bool
    visible_ms: float
    visible_by: str
    reload_s: float
    rss_mib: float


def bulk_insert(settings: Settings, name: str, drawn: Synthetic, model_version: str) -> None:
    """Synthetic faces stored as enrollment stores them: backend rows and our records."""
    with session_scope(settings) as session:
        collection = session.scalars(select(Collection).where(Collection.name == name)).one()
        first = (session.scalar(select(Person.id).order_by(Person.id.desc()).limit(1)) or 0) + 1
        people = int(drawn.owner.max()) + 1
        for start in range(0, people, CHUNK):
            session.execute(
                insert(Person),
                [
                    {
                        "id": first + p,
                        "collection_id": collection.id,
                        "external_id": f"synthetic_{p}",
                        "display_name": f"synthetic {p}",
                        "urls": [],
                    }
                    for p in range(start, min(people, start + CHUNK))
                ],
            )
        for start in range(0, len(drawn.vectors), CHUNK):
            backend_rows, records = [], []
            for i in range(start, min(len(drawn.vectors), start + CHUNK)):
                face_id = str(uuid.uuid4())
                person = int(drawn.owner[i])
                blob = drawn.vectors[i].tobytes()
                box = {"box_left": 0.3, "box_top": 0.3, "box_width": 0.3, "box_height": 0.3}
                backend_rows.append(
                    {
                        "face_id": face_id,
                        "collection_name": collection.backend_collection_id,
                        "external_id": f"synthetic_{person}",
                        "model_version": model_version,
                        "embedding": blob,
                        "confidence": 99.0,
                        "image_sha256": f"{i:064x}",
                        **box,
                    }
                )
                records.append(
                    {
                        "face_id": face_id,
                        "backend": "local",
                        "collection_id": collection.id,
                        "person_id": first + person,
                        "model_name": "synthetic",
                        "model_version": model_version,
                        "embedding": blob,
                        "confidence": 99.0,
                        "image_sha256": f"{i:064x}",
                        **box,
                    }
                )
            session.execute(insert(LocalFace), backend_rows)
            session.execute(insert(Face), records)
        # No change log for a bulk load: every worker reloads once, as after an upgrade.
        bump_version(session, collection)
        session.execute(
            update(LocalCollection)
            .where(LocalCollection.name == collection.backend_collection_id)
            .values(generation=LocalCollection.generation + 1)
        )


def path_figures(
    base: Settings, name: str, limit: int, probes: Matrix, extra_photo: Path
) -> PathFigures:
    settings = base.with_(vector_exact_limit=limit)
    ft = Facetrail(settings)
    backend = get_backend(settings, "local")
    assert isinstance(backend, LocalBackend)
    started = time.perf_counter()
    backend.search_embeddings(name, probes[:1], max_faces=16)  # loads (and builds) the index
    reload_s = time.perf_counter() - started
    timings = []
    for probe in probes:
        started = time.perf_counter()
        backend.search_embeddings(name, probe[None, :], max_faces=16)
        timings.append(time.perf_counter() - started)
    p50, p95 = percentiles(timings)
    photos = sorted((KNN / "test").iterdir())
    ft.identify(name, photos[:1])  # warm: models, templates
    started = time.perf_counter()
    report = ft.identify(name, photos)
    images_per_s = len(photos) / (time.perf_counter() - started)
    found = {
        Path(i["image"]).name: {f["person"] for f in i["faces"] if f["person"]}
        for i in report["images"]
    }
    named_ok = all(EXPECTED[k] <= found.get(k, set()) for k in EXPECTED)
    # Another process's enrollment, as this worker sees it: a second backend instance writes.
    writer = LocalBackend(settings)
    image = load_image(extra_photo, max_bytes=settings.max_image_bytes, max_pixels=10**8)
    enrolled = writer.index_faces(name, image, external_id=f"late_{limit}", max_faces=1)
    face = enrolled.indexed[0]
    assert face.embedding is not None
    stats = backend._vectors.stats
    reloads, deltas = stats.reloads, stats.deltas
    started = time.perf_counter()
    matches = backend.search_embeddings(name, face.embedding[None, :], max_faces=1)[0]
    visible = time.perf_counter() - started
    assert matches and matches[0].face_id == face.face_id, "the enrollment is not visible"
    by = "delta" if (stats.reloads, stats.deltas) == (reloads, deltas + 1) else "reload"
    writer.delete_faces(name, [face.face_id])
    return PathFigures(p50, p95, images_per_s, named_ok, visible * 1000, by, reload_s, rss_mib())


def run_size(generator: Generator, faces: int, probes_n: int) -> list[str]:
    log(f"{faces} faces")
    drawn = generator.faces(faces)
    probes = generator.probes(drawn, probes_n)
    figures = index_figures(drawn, probes)
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), models_dir=MODELS)
        ft = Facetrail(settings)
        ft.enroll("bench", enroll_entries(KNN / "train"))
        backend = get_backend(settings, "local")
        started = time.perf_counter()
        bulk_insert(settings, "bench", drawn, backend.model_version)
        log(f"  stored in {time.perf_counter() - started:.0f}s")
        del drawn
        gc.collect()
        extra = KNN / "test" / "obama1.jpg"
        for mode, limit in MODES.items():
            path = path_figures(settings, "bench", limit, probes, extra)
            log(f"  path {mode}: {path}")
            index = figures[mode]
            rows.append(
                f"| {faces:,} | {mode} | {index.build_s:.1f} | {index.p50_ms:.2f} / "
                f"{index.p95_ms:.2f} | {index.recall:.3f} | {index.person_recall:.3f} | "
                f"{index.memory_mib:.0f} | "
                f"{path.search_p50_ms:.1f} / {path.search_p95_ms:.1f} | {path.reload_s:.1f} | "
                f"{path.images_per_s:.2f} | {'yes' if path.named_ok else 'NO'} | "
                f"{path.visible_ms:.0f} ({path.visible_by}) | {path.rss_mib:.0f} |"
            )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collections")
    parser.add_argument("--faces", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--probes", type=int, default=300)
    args = parser.parse_args(argv)
    settings = Settings(models_dir=MODELS)
    log("measuring real embeddings (Glint360k chips)")
    real, labels = measure(FacePipeline(settings))
    generator = Generator(real, labels)
    check = generator.faces(5_000)
    print(f"Measured on {len(real)} Glint360k chips: {generator.target.row()}")
    print(f"Synthetic (5,000 faces): {pair_distribution(check.vectors, check.owner).row()}\n")
    print(
        "| faces | index | build s | search p50 / p95 ms (index) | recall@1 vs exact | "
        "top face's person as exact's | "
        "index MiB | search p50 / p95 ms (backend) | load s (backend) | identify images/s | "
        "expected names found | enrollment visible after ms | worker RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for faces in args.faces:
        for row in run_size(generator, faces, min(args.probes, faces // 10)):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
