"""``python -m bench.vector_libraries [--faces N]``: faiss-cpu, usearch and hnswlib compared.

The three maintained HNSW implementations on PyPI, on the same synthetic faces
(``bench.synthetic``) and probes, each building on one thread and searching one query at a time
for 64 candidates that are then re-ranked exactly (as ``facetrail.vectors`` does): build time,
search p50/p95, recall@1 against exact search, and the index's own memory (RSS growth). faiss-cpu
and hnswlib are not dependencies: ``pip install faiss-cpu hnswlib`` to run this.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bench.collections import percentiles, rss_mib
from bench.synthetic import Generator, Matrix, measure
from facetrail.backends.local.pipeline import FacePipeline
from facetrail.settings import Settings
from facetrail.vectors import _one_blas_thread

CANDIDATES = 64
EF_SEARCH = 128
EF_ADD = 100

Search = Callable[[Matrix], Any]


def build(library: str, vectors: Matrix) -> tuple[Any, Search]:
    dim, n = vectors.shape[1], len(vectors)
    if library == "faiss-cpu (HNSWFlat, M=32)":
        import faiss  # type: ignore[import-not-found, unused-ignore]

        faiss.omp_set_num_threads(1)
        index: Any = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = EF_ADD
        index.add(vectors)
        index.hnsw.efSearch = EF_SEARCH
        return index, lambda q: index.search(q[None, :], CANDIDATES)[1][0]
    if library.startswith("usearch"):
        from usearch.index import Index

        dtype = "i8" if "i8" in library else "f32"
        index = Index(  # (typed Any: usearch's stubs miss ``threads``)
            ndim=dim,
            metric="ip",
            dtype=dtype,
            connectivity=16,
            expansion_add=EF_ADD,
            expansion_search=EF_SEARCH,
        )
        index.add(np.arange(n), vectors, threads=1)
        return index, lambda q: index.search(q, CANDIDATES, threads=1).keys
    import hnswlib  # type: ignore[import-not-found, import-untyped, unused-ignore]

    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(max_elements=n, M=16, ef_construction=EF_ADD)
    index.set_num_threads(1)
    index.add_items(vectors, np.arange(n))
    index.set_ef(EF_SEARCH)
    return index, lambda q: index.knn_query(q[None, :], k=CANDIDATES)[0][0]


LIBRARIES = (
    "hnswlib (M=16)",
    "usearch i8 (M=16)",
    "usearch f32 (M=16)",
    "faiss-cpu (HNSWFlat, M=32)",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.vector_libraries")
    parser.add_argument("--faces", type=int, default=50_000)
    parser.add_argument("--probes", type=int, default=500)
    args = parser.parse_args(argv)
    _one_blas_thread()
    real, labels = measure(FacePipeline(Settings()))
    generator = Generator(real, labels)
    drawn = generator.faces(args.faces)
    vectors, probes = drawn.vectors, generator.probes(drawn, args.probes)
    exact = np.argmax(probes @ vectors.T, axis=1)
    print(
        f"{args.faces:,} synthetic faces, {args.probes} probes; raw float32 vectors "
        f"{vectors.nbytes / 2**20:.0f} MiB\n"
    )
    print("| library | build s | search p50 / p95 ms | recall@1 vs exact | index MiB |")
    print("|---|---|---|---|---|")
    for library in LIBRARIES:
        gc.collect()
        before = rss_mib()
        started = time.perf_counter()
        try:
            index, search = build(library, vectors)
        except ImportError as exc:
            print(f"{library}: not installed ({exc})", file=sys.stderr)
            continue
        built = time.perf_counter() - started
        memory = rss_mib() - before
        timings, hits = [], 0
        for probe, want in zip(probes, exact, strict=True):
            started = time.perf_counter()
            keys = np.asarray(search(probe), dtype=np.int64)
            best = keys[np.argmax(vectors[keys] @ probe)]
            timings.append(time.perf_counter() - started)
            hits += int(best == want)
        p50, p95 = percentiles(timings)
        print(
            f"| {library} | {built:.1f} | {p50:.2f} / {p95:.2f} | "
            f"{hits / len(probes):.3f} | {memory:.0f} |",
            flush=True,
        )
        del index, search
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
