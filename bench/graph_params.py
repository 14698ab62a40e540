"""``python -m bench.graph_params --faces N --graph f16:32:256 ...``: usearch graph parameters.

How ``facetrail.vectors``' graph parameters were chosen. On synthetic faces (``bench.synthetic``,
the same data as ``bench.collections``), for each graph ``dtype:connectivity:expansion_add``:
the build (on every core, as workers build) in wall and CPU time, its memory and file size,
then for each search depth (``expansion_search``) recall@1 against exact float32 search and
the CPU time per query (one query at a time, one thread), with the graph's own float16 ranking
and with the top 16 re-ranked against float32 rows (equal when float16 cosines suffice).

Graphs take long to build at a million faces: with ``--cache DIR`` the vectors, probes, exact
answers and each graph are kept there and reused by later runs (the build time printed is then
the one measured when it was built, read back from DIR).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.synthetic import Generator, measure
from facetrail.backends.local.pipeline import FacePipeline
from facetrail.settings import Settings
from facetrail.vectors import _one_blas_thread

MODELS = Path.home() / ".local/share/facetrail/models"
CHUNK = 100_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def data(faces: int, probes: int, cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectors, probes and each probe's exact top face (computed once per cache)."""
    paths = [cache / f"{name}-{faces}-{probes}.npy" for name in ("vectors", "probes", "exact")]
    if all(p.exists() for p in paths):
        vectors, queries, exact = (np.load(p) for p in paths)
        return vectors, queries, exact
    log("measuring real embeddings (Glint360k chips)")
    real, labels = measure(FacePipeline(Settings(models_dir=MODELS)))
    generator = Generator(real, labels)
    drawn = generator.faces(faces)
    queries = generator.probes(drawn, probes)
    _one_blas_thread()
    exact = np.concatenate(
        [np.argmax(queries[i : i + 100] @ drawn.vectors.T, axis=1) for i in range(0, probes, 100)]
    )
    for path, array in zip(paths, (drawn.vectors, queries, exact), strict=True):
        np.save(path, array)
    return drawn.vectors, queries, exact


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.graph_params")
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--graph", nargs="+", default=["f16:32:256"], help="dtype:M:ef_add")
    parser.add_argument("--ef", type=int, nargs="+", default=[128, 256, 384, 512, 768, 1024])
    parser.add_argument("--cache", type=Path, help="keep data and graphs here between runs")
    args = parser.parse_args(argv)
    cache = args.cache or Path("/tmp") / "facetrail-graph-params"
    cache.mkdir(parents=True, exist_ok=True)
    vectors, queries, exact = data(args.faces, args.probes, cache)
    print(
        "| graph (dtype, connectivity, expansion_add) | build s wall / CPU | RSS of the loaded "
        "graph MiB | file MiB | search depth | recall@1 vs exact (float16 / re-ranked) | "
        "CPU ms per query p50 / p95 / p99 |"
    )
    print("|---|---|---|---|---|---|---|")
    for spec in args.graph:
        dtype, connectivity, expansion = spec.split(":")
        path = cache / f"graph-{args.faces}-{dtype}-{connectivity}-{expansion}.usearch"
        built = path.with_suffix(".json")

        if not path.exists():
            graph = new_graph(vectors.shape[1], dtype, connectivity, expansion)
            wall, cpu = time.perf_counter(), time.process_time()
            for start in range(0, len(vectors), CHUNK):
                keys = np.arange(start, min(len(vectors), start + CHUNK), dtype=np.uint64)
                graph.add(keys, vectors[start : start + CHUNK], threads=0)
                log(f"  {spec}: {start + len(keys):,} in {time.perf_counter() - wall:.0f} s")
            took = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
            graph.save(str(path))
            built.write_text(json.dumps(took))
            del graph
        took = json.loads(built.read_text())
        before = rss()
        graph = new_graph(vectors.shape[1], dtype, connectivity, expansion)
        graph.load(str(path))
        memory = rss() - before
        for ef in args.ef:
            graph.expansion_search = ef
            own = reranked = 0
            spent = []
            for query, answer in zip(queries, exact, strict=True):
                cpu = time.process_time()
                keys = np.asarray(graph.search(query, 16, threads=1).keys).astype(np.int64)
                spent.append(time.process_time() - cpu)
                own += keys[0] == answer
                reranked += keys[np.argmax(vectors[keys] @ query)] == answer
            ms = np.percentile(np.array(spent) * 1000, [50, 95, 99])
            print(
                f"| {dtype}, {connectivity}, {expansion} | {took['wall']:.0f} / "
                f"{took['cpu']:.0f} | {memory:.0f} | {path.stat().st_size / 2**20:.0f} | {ef} | "
                f"{own / len(queries):.3f} / {reranked / len(queries):.3f} | "
                f"{ms[0]:.2f} / {ms[1]:.2f} / {ms[2]:.2f} |",
                flush=True,
            )
        del graph
    return 0


def new_graph(dim: int, dtype: str, connectivity: str, expansion: str) -> Any:
    from usearch.index import Index

    return Index(
        ndim=dim,
        metric="ip",
        dtype=dtype,
        connectivity=int(connectivity),
        expansion_add=int(expansion),
    )


def rss() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    raise SystemExit(main())
