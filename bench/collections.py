"""Collections of many faces: ``python -m bench.collections [--faces N ...] [--home DIR]``.

For each size, side by side in one run, two kinds of worker on the same database (SQLite unless
``--database-url``): ``exact`` (``vector_exact_limit`` above any collection: float32 rows, one
matrix product and a partial sort) and ``default`` (the shipped limit, 50,000: above it a
usearch HNSW graph over float16 vectors, saved as a snapshot that later workers load).

The database holds two collections: ``big``, N synthetic faces shaped like real ones
(``bench.synthetic``: clustered by person, 10 faces per person on average, with the same- and
different-person cosine distributions measured on the Glint360k chips) bulk-inserted as
enrollment stores them, and ``small``, 1,000 such faces, the baseline; both also hold the real
people of face_recognition's ``knn_examples/train``, enrolled by an enroll job. With ``--home``
the prepared database (and the snapshots workers write) is kept there and reused by later runs,
so a large graph is built once.

Each kind runs as worker processes (``bench.collection_worker``): the first loads ``big`` (from
a snapshot if one exists, else from the database, building the graph and saving it), then a
second starts and loads it too. The first then searches every probe (new faces of enrolled
people) alone, through the index and through the backend; identifies the 5 ``knn_examples/test``
photos in ``small`` and ``big`` alternately (CPU time per image; "names found" says every
expected person was named in both); then this process enrolls one more photo in ``big`` and
deletes it again, and both workers search until they see each change (time from this process's
commit). Recall@1 compares each probe's top face with the exact worker's. Memory is each
worker's resident set after all that, beside its size with the models loaded and ``small``
identified, before ``big`` was touched.

Progress goes to stderr, the markdown tables to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, select, update

from bench.synthetic import Generator, Synthetic, measure, pair_distribution
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
from tests.procs import LineProcess

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
KNN = DATA / "face_recognition" / "examples" / "knn_examples"
MODELS = Path.home() / ".local/share/facetrail/models"
EXACT = 10**12  # a vector_exact_limit no collection reaches
KINDS = {"exact": EXACT, "default": Settings().vector_exact_limit}
SMALL = 1_000
CHUNK = 20_000
DIM = 192


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
        # No change log for a bulk load: every worker loads in full, as after an upgrade.
        bump_version(session, collection)
        session.execute(
            update(LocalCollection)
            .where(LocalCollection.name == collection.backend_collection_id)
            .values(generation=LocalCollection.generation + 1)
        )


def prepare(settings: Settings, generator: Generator, faces: int, probes: int) -> Path:
    """The database of one size (kept when it is already there), and its probes' file."""
    ready = settings.home / "prepared.json"
    probes_path = settings.home / "probes.npy"
    if ready.exists() and json.loads(ready.read_text()) == {"faces": faces, "probes": probes}:
        log(f"  reusing the prepared database in {settings.home}")
        return probes_path
    if (
        settings.resolved_database_url.startswith("sqlite")
        and (settings.home / "facetrail.db").exists()
    ):
        raise SystemExit(f"{settings.home} holds another database: use an empty --home")
    started = time.perf_counter()
    ft = Facetrail(settings)
    model_version = get_backend(settings, "local").model_version
    for name, count, seed in (("small", SMALL, 11), ("big", faces, None)):
        ft.enroll(name, enroll_entries(KNN / "train"))
        drawn = generator.faces(count, seed=seed)
        bulk_insert(settings, name, drawn, model_version)
        if name == "big":
            np.save(probes_path, generator.probes(drawn, probes))
        del drawn
    ready.write_text(json.dumps({"faces": faces, "probes": probes}))
    log(f"  prepared in {time.perf_counter() - started:.0f} s")
    return probes_path


class WorkerProcess(LineProcess):
    """``bench.collection_worker`` in its own process."""

    def __init__(self, settings: Settings, limit: int) -> None:
        super().__init__(
            "bench.collection_worker", settings, FACETRAIL_VECTOR_EXACT_LIMIT=str(limit)
        )
        self.base = self.ready["ready"]


def change_visibility(
    settings: Settings, workers: list[WorkerProcess], photo: Path
) -> tuple[list[Any], list[Any]]:
    """Enroll a photo in ``big`` and delete it again; each worker's time to see each change."""
    writer = LocalBackend(settings)
    image = load_image(photo, max_bytes=settings.max_image_bytes, max_pixels=10**8)
    enrolled = writer.index_faces("big", image, external_id=f"late_{uuid.uuid4().hex}")
    committed = time.time()
    face = enrolled.indexed[0]
    assert face.embedding is not None
    change = {"face_id": face.face_id, "vector": [float(v) for v in face.embedding]}
    for worker in workers:
        worker.send({"do": "visible", **change, "committed": committed})
    visible = [worker.read() for worker in workers]
    writer.delete_faces("big", [face.face_id])
    committed = time.time()
    for worker in workers:
        worker.send({"do": "gone", **change, "committed": committed})
    gone = [worker.read() for worker in workers]
    return visible, gone


def run_size(
    generator: Generator, faces: int, probes: int, home: Path, database_url: str, rounds: int
) -> dict[str, dict[str, Any]]:
    log(f"{faces:,} faces")
    settings = Settings(home=home, models_dir=MODELS, database_url=database_url)
    home.mkdir(parents=True, exist_ok=True)
    probes_path = prepare(settings, generator, faces, probes)
    results: dict[str, dict[str, Any]] = {}
    for kind, limit in KINDS.items():
        first = WorkerProcess(settings, limit)
        loaded = [first.ask({"do": "load"})]
        log(f"  {kind}: first worker loaded {loaded[0]}")
        second = WorkerProcess(settings, limit)
        loaded.append(second.ask({"do": "load"}))
        log(f"  {kind}: second worker loaded {loaded[1]}")
        searched = first.ask({"do": "search", "probes": str(probes_path)})
        shown = {k: v for k, v in searched.items() if k not in ("top", "owner")}
        log(f"  {kind}: search {shown}")
        identified = first.ask({"do": "identify", "rounds": rounds})
        log(f"  {kind}: identify {identified}")
        visible, gone = change_visibility(settings, [first, second], KNN / "test" / "obama1.jpg")
        log(f"  {kind}: enrollment seen {visible}, deletion seen {gone}")
        memory = [first.ask({"do": "memory"}), second.ask({"do": "memory"})]
        results[kind] = {
            "loaded": loaded,
            "search": searched,
            "identify": identified,
            "visible": visible,
            "gone": gone,
            "memory": memory,
            "base": [first.base, second.base],
        }
        first.close(timeout=120)
        second.close(timeout=120)
    return results


def rows(faces: int, results: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    exact = results["exact"]["search"]
    raw = faces * DIM * 4 / 2**20
    search_rows, worker_rows = [], []
    for kind, r in results.items():
        s = r["search"]
        recall = np.mean([a == b for a, b in zip(s["top"], exact["top"], strict=True)])
        person = np.mean([a == b for a, b in zip(s["owner"], exact["owner"], strict=True)])
        first, second = r["loaded"]
        graph = "graph" if first["approximate"] else "exact"
        search_rows.append(
            f"| {faces:,} | {kind} ({graph}) | "
            f"{first['faces_s'][0]:.1f} / {first['faces_s'][1]:.1f} ({first['faces_from']}) | "
            f"{second['faces_s'][0]:.1f} / {second['faces_s'][1]:.1f} "
            f"({second['faces_from']}) | "
            f"{s['index_cpu'][0]:.2f} / {s['index_cpu'][1]:.2f} | "
            f"{s['index_wall'][0]:.2f} / {s['index_wall'][1]:.2f} | "
            f"{s['backend_wall'][0]:.2f} / {s['backend_wall'][1]:.2f} | "
            f"{recall:.3f} | {person:.3f} |"
        )
        i = r["identify"]
        ratio = i["big"]["cpu_per_image"] / i["small"]["cpu_per_image"]
        seen = " / ".join(f"{v['s'] * 1000:.0f} ({v['how']})" for v in r["visible"])
        gone = " / ".join(f"{v['s'] * 1000:.0f}" for v in r["gone"])
        collection = [m["rss"] - b["rss"] for m, b in zip(r["memory"], r["base"], strict=True)]
        worker_rows.append(
            f"| {faces:,} | {kind} | "
            f"{i['small']['cpu_per_image']:.3f} / {i['big']['cpu_per_image']:.3f} "
            f"({ratio:.2f}x) | "
            f"{i['small']['images_per_s']:.2f} / {i['big']['images_per_s']:.2f} | "
            f"{'yes' if i['named_ok'] else 'NO'} | "
            f"{first['templates_s'][1]:.1f} ({first['templates_from']}) | "
            f"{seen} | {gone} | "
            f"{r['base'][0]['rss']:.0f} | "
            f"{r['memory'][0]['rss']:.0f} / {r['memory'][1]['rss']:.0f} | "
            f"{collection[0] / raw:.2f}x / {collection[1] / raw:.2f}x | "
            f"{r['memory'][0]['peak']:.0f} / {r['memory'][1]['peak']:.0f} |"
        )
    return search_rows, worker_rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.collections")
    parser.add_argument("--faces", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="identify rounds per collection")
    parser.add_argument(
        "--home", type=Path, help="keep each size's database and snapshots in DIR/<faces>"
    )
    parser.add_argument("--database-url", default="", help="instead of SQLite in the home")
    args = parser.parse_args(argv)
    settings = Settings(models_dir=MODELS)
    log("measuring real embeddings (Glint360k chips)")
    real, labels = measure(FacePipeline(settings))
    generator = Generator(real, labels)
    check = generator.faces(5_000)
    print(f"Measured on {len(real)} Glint360k chips: {generator.target.row()}")
    print(f"Synthetic (5,000 faces): {pair_distribution(check.vectors, check.owner).row()}\n")
    search_table = [
        "| faces | worker | first worker loads `big` s CPU / wall (from) | second worker "
        "(from) | search p50 / p95 ms CPU (index) | wall (index) | wall (backend) | "
        "recall@1 vs exact | top face's person as exact's |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    worker_table = [
        "| faces | worker | identify CPU s / image: 1k-face `small` / `big` | images/s "
        "(wall) | expected names found | templates load s | enrollment seen after ms (each "
        "worker) | deletion seen after ms | RSS MiB: models + `small` | RSS MiB after | "
        "RSS growth / raw float32 vectors | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for faces in args.faces:
        with tempfile.TemporaryDirectory() as scratch:
            home = (args.home / str(faces)) if args.home else Path(scratch)
            results = run_size(
                generator,
                faces,
                min(args.probes, faces // 10),
                home,
                args.database_url,
                args.rounds,
            )
        search, worker = rows(faces, results)
        search_table += search
        worker_table += worker
        print("\n".join(search_table[-2:]), file=sys.stderr, flush=True)
    print("\n".join(search_table) + "\n\n" + "\n".join(worker_table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
