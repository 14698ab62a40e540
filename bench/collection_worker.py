"""One worker process for ``bench.collections``: the local backend as a worker runs it.

Started with a FACETRAIL_HOME holding a prepared database (collections ``small``: 1,000
synthetic faces, and ``big``), it loads the models by identifying one photo in ``small``, then
answers JSON commands on stdin, one per line, with one JSON line on stdout:

- ``load``: the first search of ``big`` (its index loaded from a snapshot, or from the database
  and built) and the first identification in it (person templates), timed;
- ``search``: every probe searched alone, through the index and through the backend, timed in
  CPU and wall time, with each probe's top face;
- ``identify``: the test photos identified in ``small`` and ``big`` alternately (small, big,
  big, small per round), timed;
- ``visible`` / ``gone``: search for a face another process just enrolled or deleted until the
  answer shows it, timed from that process's commit (``time.time()`` on both sides);
- ``memory``: resident and peak memory.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from facetrail.api import Facetrail
from facetrail.backends import get_backend
from facetrail.backends.local.backend import LocalBackend
from facetrail.models import LocalCollection
from facetrail.services import naming
from facetrail.settings import Settings

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KNN = DATA / "face_recognition" / "examples" / "knn_examples"
EXPECTED = {
    "alex_lacamoire1.jpg": {"alex_lacamoire"},
    "johnsnow_test1.jpg": {"kit_harington"},
    "kit_with_rose.jpg": {"kit_harington", "rose_leslie"},
    "obama1.jpg": {"obama"},
    "obama_and_biden.jpg": {"obama", "biden"},
}
POLL_S = 0.002
WAIT_S = 60.0


def memory() -> dict[str, float]:
    """Resident memory now and at its peak, MiB."""
    found: dict[str, float] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return {"rss": found["VmRSS"], "peak": found["VmHWM"]}


def percentiles(values: list[float]) -> list[float]:
    ms = np.array(values) * 1000
    return [float(np.percentile(ms, 50)), float(np.percentile(ms, 95))]


class Worker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ft = Facetrail(settings)
        backend = get_backend(settings, "local")
        assert isinstance(backend, LocalBackend)
        self.backend = backend
        self.photos = sorted((KNN / "test").iterdir())
        self.ft.identify("small", self.photos[:1])  # models loaded, ``small`` cached

    def load(self) -> dict[str, Any]:
        stats, probe = self.backend._vectors.stats, np.zeros((1, 192), dtype=np.float32)
        snapshots, cpu, wall = stats.snapshot_loads, time.process_time(), time.perf_counter()
        self.backend.search_embeddings("big", probe, max_faces=1)
        faces = [time.process_time() - cpu, time.perf_counter() - wall]
        faces_from = "snapshot" if stats.snapshot_loads > snapshots else "database"
        snapshots, cpu, wall = naming.stats.snapshot_loads, time.process_time(), time.perf_counter()
        self.ft.identify("big", self.photos[:1])  # person templates
        templates = [time.process_time() - cpu, time.perf_counter() - wall]
        templates_from = "snapshot" if naming.stats.snapshot_loads > snapshots else "database"
        vectors = self._vectors()
        return {
            "faces_s": faces,
            "faces_from": faces_from,
            "templates_s": templates,
            "templates_from": templates_from,
            "approximate": vectors.index.approximate,
            "memory": memory(),
        }

    def _vectors(self) -> Any:
        with self.backend._sessions() as session:
            collection = session.get_one(LocalCollection, "big")
            return self.backend._vectors.get(session, collection, self.backend.model_version)

    def search(self, probes_path: str) -> dict[str, Any]:
        probes = np.load(probes_path)
        vectors = self._vectors()
        index_cpu, index_wall, backend_cpu, backend_wall, top, owner = [], [], [], [], [], []
        for probe in probes:
            query = probe[None, :]
            cpu, wall = time.process_time(), time.perf_counter()
            with vectors.lock:
                labels, _ = vectors.index.search(query, 16)
            index_cpu.append(time.process_time() - cpu)
            index_wall.append(time.perf_counter() - wall)
            top.append(labels[0][0])
            owner.append(vectors.meta_of(labels)[0][0])
            cpu, wall = time.process_time(), time.perf_counter()
            self.backend.search_embeddings("big", query, max_faces=16)
            backend_cpu.append(time.process_time() - cpu)
            backend_wall.append(time.perf_counter() - wall)
        return {
            "index_cpu": percentiles(index_cpu),
            "index_wall": percentiles(index_wall),
            "backend_cpu": percentiles(backend_cpu),
            "backend_wall": percentiles(backend_wall),
            "top": top,
            "owner": owner,
        }

    def identify(self, rounds: int) -> dict[str, Any]:
        spent: dict[str, list[float]] = {"small": [0.0, 0.0], "big": [0.0, 0.0]}
        named_ok = True
        for _ in range(rounds):
            for name in ("small", "big", "big", "small"):  # ABBA: drifts cancel
                cpu, wall = time.process_time(), time.perf_counter()
                report = self.ft.identify(name, self.photos)
                spent[name][0] += time.process_time() - cpu
                spent[name][1] += time.perf_counter() - wall
                found = {
                    Path(i["image"]).name: {f["person"] for f in i["faces"] if f["person"]}
                    for i in report["images"]
                }
                named_ok &= all(EXPECTED[k] <= found.get(k, set()) for k in EXPECTED)
        images = 2 * rounds * len(self.photos)
        return {
            name: {"cpu_per_image": cpu / images, "images_per_s": images / wall}
            for name, (cpu, wall) in spent.items()
        } | {"named_ok": named_ok}

    def wait(self, face_id: str, vector: list[float], committed: float, present: bool) -> Any:
        stats = self.backend._vectors.stats
        before = (stats.reloads, stats.deltas)
        query = np.asarray(vector, dtype=np.float32)[None, :]
        searches = 0
        while time.time() - committed < WAIT_S:
            matches = self.backend.search_embeddings("big", query, max_faces=1)[0]
            searches += 1
            if bool(matches and matches[0].face_id == face_id) == present:
                elapsed = time.time() - committed
                how = (
                    "delta"
                    if (stats.reloads, stats.deltas) == (before[0], before[1] + 1)
                    else ("reload" if stats.reloads > before[0] else "none")
                )
                return {"s": elapsed, "how": how, "searches": searches}
            time.sleep(POLL_S)
        return {"s": None, "how": "timeout", "searches": searches}


def main() -> None:
    settings = Settings.from_env()
    worker = Worker(settings)
    print(json.dumps({"ready": memory()}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        verb = command.pop("do")
        if verb == "load":
            answer: Any = worker.load()
        elif verb == "search":
            answer = worker.search(command["probes"])
        elif verb == "identify":
            answer = worker.identify(command["rounds"])
        elif verb in ("visible", "gone"):
            answer = worker.wait(
                command["face_id"], command["vector"], command["committed"], verb == "visible"
            )
        elif verb == "memory":
            answer = memory()
        else:
            raise ValueError(verb)
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
