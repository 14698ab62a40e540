"""The vector index: exact top-k, the approximate graph, changes, and saving and loading."""

from __future__ import annotations

from pathlib import Path

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


def file_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()))


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


@pytest.mark.parametrize("text", [True, False])
def test_label_lookups_follow_any_sequence_of_changes(text: bool) -> None:
    """Labels live in a sorted table plus a dict of recent ones: whatever the order of adds,
    removals and re-adds (small and large batches), each label finds its own row and group."""
    rng = np.random.default_rng(3)
    vectors = clustered(300, 10, dim=16)
    index: VectorIndex[str] | VectorIndex[int]
    index = VectorIndex(16, exact_limit=10**9)
    model: dict[object, int] = {}  # label -> group
    for step in range(60):
        batch = int(rng.choice([1, 3, 50, 5000]))
        numbers = rng.choice(len(vectors), size=min(batch, len(vectors)), replace=False)
        labels = [f"face-{n}" if text else int(n) * 7 for n in numbers]
        if rng.random() < 0.35:
            index.remove(labels)  # type: ignore[arg-type]
            for label in labels:
                model.pop(label, None)
        else:
            groups = np.full(len(labels), step, dtype=np.int32)
            index.add(labels, vectors[numbers], groups)  # type: ignore[arg-type]
            model.update(dict.fromkeys(labels, step))
        assert len(index) == len(model)
    everything = [f"face-{n}" if text else n * 7 for n in range(len(vectors))]
    present = [label for label in everything if label in model]
    assert [label in index for label in everything] == [label in model for label in everything]
    assert index.groups(present) == [model[label] for label in present]  # type: ignore[arg-type]
    found, _ = index.search(vectors, 1)
    assert {row[0] for row in found} <= set(model)


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


def graph_and_exact(
    vectors: npt.NDArray[np.float32],
) -> tuple[VectorIndex[int], VectorIndex[int]]:
    exact: VectorIndex[int] = VectorIndex(vectors.shape[1], exact_limit=10**9)
    graph: VectorIndex[int] = VectorIndex(vectors.shape[1], exact_limit=1000)
    labels = list(range(len(vectors)))
    for start in range(0, len(vectors), 500):  # the graph is built on crossing the limit
        exact.add(labels[start : start + 500], vectors[start : start + 500])
        graph.add(labels[start : start + 500], vectors[start : start + 500])
    return graph, exact


def probes_near(vectors: npt.NDArray[np.float32], seed: int) -> npt.NDArray[np.float32]:
    centres = vectors[::10]
    noise = normalise(np.random.default_rng(seed).normal(size=centres.shape))
    return normalise(centres * 0.5 + noise * 0.3)


def test_graph_search_finds_the_exact_answer_with_float16_cosines() -> None:
    vectors = clustered(400, 10, seed=1)
    probes = probes_near(vectors, 2)
    graph, exact = graph_and_exact(vectors)
    assert graph.approximate and not exact.approximate
    want, want_cos = exact.search(probes, 5)
    got, got_cos = graph.search(probes, 5)
    recall = np.mean([w[0] == g[0] for w, g in zip(want, got, strict=True)])
    assert recall >= 0.99
    # The graph keeps float16 vectors: its cosines are float32's to within 1e-4 or so.
    same = [i for i, (w, g) in enumerate(zip(want, got, strict=True)) if w[0] == g[0]]
    assert np.abs(want_cos[same, 0] - got_cos[same, 0]).max() < 2e-4
    graph.remove([want[0][0]])
    assert want[0][0] not in graph.search(probes[:1], 5)[0][0]


@pytest.mark.parametrize("limit", [1000, 10**9], ids=["graph", "exact"])
def test_a_saved_index_loads_to_the_same_answers_and_takes_changes(
    tmp_path: Path, limit: int
) -> None:
    vectors = clustered(300, 10, seed=4)
    probes = probes_near(vectors, 5)
    index: VectorIndex[str] = VectorIndex(vectors.shape[1], exact_limit=limit)
    labels = [f"face-{i}" for i in range(len(vectors))]
    index.add(labels, vectors, np.arange(len(vectors)) // 10)
    index.remove(labels[:7])
    index.add(["late"], vectors[:1], [999])
    index.save(tmp_path)
    loaded: VectorIndex[str] = VectorIndex.load(tmp_path, exact_limit=limit)
    assert loaded.approximate == (limit == 1000)
    assert len(loaded) == len(index) and "face-3" not in loaded and "face-8" in loaded
    assert loaded.groups(["face-8", "late"]) == [0, 999]
    before, before_cos = index.search(probes, 3)
    after, after_cos = loaded.search(probes, 3)
    assert before == after and np.array_equal(before_cos, after_cos)
    # The loaded index goes on taking changes (a worker applies the deltas since the save).
    loaded.remove(["face-8"])
    loaded.add(["newer"], vectors[8:9], [5])
    found, _ = loaded.search(vectors[8:9], 1)
    assert found == [["newer"]] and "face-8" not in loaded


def test_a_saved_graph_holds_no_removed_vector_or_label(tmp_path: Path) -> None:
    """Removed rows' vectors stay in usearch's freed slots until reused: saving overwrites
    them, also for slots freed before an earlier save and load."""
    vectors = clustered(200, 10, dim=32, seed=6)
    index: VectorIndex[str] = VectorIndex(32, exact_limit=1000)
    labels = [f"face-{i:04d}" for i in range(len(vectors))]
    index.add(labels, vectors)
    half = vectors.astype(np.float16)

    def traces(folder: Path, rows: list[int]) -> list[int]:
        data = file_bytes(folder)
        return [r for r in rows if half[r].tobytes() in data or labels[r].encode() in data]

    first = tmp_path / "first"
    first.mkdir()
    index.save(first)
    assert traces(first, [5, 17, 1500]) == [5, 17, 1500]  # the check can see them

    index.remove([labels[5], labels[17]])
    second = tmp_path / "second"
    second.mkdir()
    index.save(second)
    assert traces(second, [5, 17]) == []

    loaded: VectorIndex[str] = VectorIndex.load(second, exact_limit=1000)
    loaded.remove([labels[1500]])
    third = tmp_path / "third"
    third.mkdir()
    loaded.save(third)
    assert traces(third, [5, 17, 1500]) == []
    assert traces(third, [6, 1501]) == [6, 1501]


def test_template_is_the_normalised_mean() -> None:
    a, b = normalise(np.eye(3, dtype=np.float32)[:2])
    assert np.allclose(template(np.stack([a, b])), (a + b) / np.linalg.norm(a + b))
