"""The vector index: exact top-k, the approximate graph with exact re-ranking, and changes."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from facetrail.vectors import VectorIndex, normalise, template, top_k


def clustered(
    people: int, per_person: int, dim: int = 64, seed: int = 0
) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, dim))
    faces = np.repeat(centres, per_person, axis=0) + 0.6 * rng.normal(
        size=(people * per_person, dim)
    )
    return normalise(faces)


def test_top_k_is_the_head_of_a_full_sort_with_ties_by_column() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.9, -1.0], [3.0, 2.0, 1.0, 0.0, 4.0]], dtype=np.float32)
    assert top_k(scores, 3).tolist() == [[1, 3, 2], [4, 0, 1]]
    assert top_k(scores, 10).tolist() == [[1, 3, 2, 0, 4], [4, 0, 1, 2, 3]]


def test_exact_search_matches_brute_force_and_follows_changes() -> None:
    vectors = clustered(50, 4)
    index: VectorIndex[str] = VectorIndex(vectors.shape[1])
    labels = [f"f{i}" for i in range(len(vectors))]
    index.add(labels, vectors)
    found, cosines = index.search(vectors[:5], 3)
    expected = np.argsort(-(vectors[:5] @ vectors.T), axis=1, kind="stable")[:, :3]
    assert found == [[labels[j] for j in row] for row in expected]
    assert found[0][0] == "f0" and cosines[0, 0] == pytest.approx(1.0)
    index.remove(["f0"])
    assert "f0" not in index and len(index) == len(vectors) - 1
    assert "f0" not in index.search(vectors[:1], 10)[0][0]
    # Replacing a label's vector moves it.
    index.add(["f1"], -vectors[1:2])
    assert index.search(vectors[1:2], 1)[0][0] != ["f1"]
    assert np.allclose(index.vector("f1"), -vectors[1])


def test_removals_compact_and_search_stays_exact() -> None:
    vectors = clustered(600, 5)
    index: VectorIndex[int] = VectorIndex(vectors.shape[1])
    index.add(list(range(len(vectors))), vectors)
    gone = list(range(0, 2000))
    index.remove(gone)
    assert len(index) == len(vectors) - len(gone)
    found, _ = index.search(vectors[2000:2010], 1)
    assert [row[0] for row in found] == list(range(2000, 2010))
    assert all(r[0] >= 2000 for r in index.search(vectors[:20], 1)[0])


def test_graph_search_re_ranks_to_the_exact_answer() -> None:
    vectors = clustered(400, 10, seed=1)
    probes = (
        clustered(400, 10, seed=1)[::10] * 0.5
        + normalise(np.random.default_rng(2).normal(size=(400, vectors.shape[1]))) * 0.3
    )
    exact: VectorIndex[int] = VectorIndex(vectors.shape[1], exact_limit=10**9)
    graph: VectorIndex[int] = VectorIndex(vectors.shape[1], exact_limit=1000)
    labels = list(range(len(vectors)))
    for start in range(0, len(vectors), 500):  # the graph is built on crossing the limit
        exact.add(labels[start : start + 500], vectors[start : start + 500])
        graph.add(labels[start : start + 500], vectors[start : start + 500])
    assert graph.approximate and not exact.approximate
    want, want_cos = exact.search(probes, 5)
    got, got_cos = graph.search(probes, 5)
    recall = np.mean([w[0] == g[0] for w, g in zip(want, got, strict=True)])
    assert recall >= 0.99
    # Re-ranked cosines are exact, not the graph's 8-bit estimates.
    same = [i for i, (w, g) in enumerate(zip(want, got, strict=True)) if w[0] == g[0]]
    assert np.allclose(want_cos[same, 0], got_cos[same, 0])
    graph.remove([want[0][0]])
    assert want[0][0] not in graph.search(probes[:1], 5)[0][0]


def test_template_is_the_normalised_mean() -> None:
    a, b = normalise(np.eye(3, dtype=np.float32)[:2])
    assert np.allclose(template(np.stack([a, b])), (a + b) / np.linalg.norm(a + b))
