"""bench.diagnose's offline replay of the identify rule and its stranger-rate curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench import datasets
from bench.diagnose import Photo, cosine_scorer, count, decide, stranger_curve, template


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, np.float32)
    return v / np.linalg.norm(v)


def photo(name: str, label: str, *values: float) -> Photo:
    return Photo(Path(name), label, {"mfn": unit(*values)} if values else {})


def test_replay_names_at_80_and_counts_unknowns_and_missing_faces() -> None:
    photos = {
        p.path: p
        for p in (
            photo("a1", "a", 1, 0, 0),
            photo("b1", "b", 0, 1, 0),
            photo("a2", "a", 1, 0.1, 0),  # close to a: named
            photo("b2", "b", 0.5, 0.55, 0.67),  # nearer b, but not close enough
            photo("c1", "c", 0, 0, 1),  # stranger, far from both
            photo("x", "a"),  # no face found
        )
    }
    split = datasets.IdentitySplit(
        [datasets.Labelled(Path(n), n[0]) for n in ("a1", "b1")],
        [datasets.Labelled(Path(n), n[0] if n != "x" else "a") for n in ("a2", "b2", "c1", "x")],
        2,
    )
    curve = (20.0, -10.0)  # 80 at cosine (ln 4 + 10) / 20 = 0.569
    counts = count(decide(photos, split, frozenset({"c"}), cosine_scorer(["mfn"], curve)))
    assert (counts.right, counts.wrong, counts.unknown, counts.no_face) == (2, 0, 2, 1)
    assert (counts.rank1, counts.enrolled_probes) == (2, 3)  # a2 and b2 ranked right


def test_template_is_the_normalised_weighted_mean() -> None:
    t = template([unit(1, 0), unit(0, 1)], [3.0, 1.0])
    assert np.isclose(np.linalg.norm(t), 1.0) and t[0] > t[1]


def test_stranger_curve_puts_80_at_the_99th_percentile_of_best_other_cosines() -> None:
    rng = np.random.default_rng(0)
    photos = [
        Photo(Path(f"{person}-{i}.jpg"), str(person), {"mfn": unit(*rng.normal(size=8))})
        for person in range(6)
        for i in range(4)
    ]
    a, b = stranger_curve(photos, ["mfn"], (10.0, 0.0))
    threshold = (np.log(4.0) - b) / a
    assert a == 10.0 and -1.0 < threshold < 1.0
