"""bench.diagnose's offline replay of the identify rule, its stranger-rate operating points, the
summed log-odds of two embedders and the face-mesh alignment points."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench import datasets
from bench.diagnose import (
    CURVES,
    Photo,
    cosine_scorer,
    count,
    decide,
    log_odds,
    mesh_five_points,
    on_strangers,
    stranger_curve,
    stranger_threshold,
    template,
)


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


def test_log_odds_sum_each_kinds_curve_and_mix_the_nearest_photo() -> None:
    probe = Photo(Path("p"), "a", {"mfn": unit(1, 0), "dlib": unit(1, 0)})
    enrolled = [
        Photo(Path("e1"), "a", {"mfn": unit(1, 0), "dlib": unit(1, 0)}),
        Photo(Path("e2"), "a", {"mfn": unit(0, 1), "dlib": unit(1, 0)}),
    ]
    cos_template = float(unit(1, 0) @ template([unit(1, 0), unit(0, 1)]))  # 0.707
    (a1, b1), (a2, b2) = CURVES["mfn"], CURVES["dlib"]
    fused = log_odds(["mfn", "dlib"])(probe, enrolled)
    assert np.isclose(fused, a1 * cos_template + b1 + a2 * 1.0 + b2)
    mixed = log_odds(["mfn"], mix_nearest=True)(probe, enrolled)
    assert np.isclose(mixed, a1 * (cos_template + 1.0) / 2 + b1)  # nearest photo: cosine 1


def test_on_strangers_puts_80_where_one_percent_of_strangers_score() -> None:
    rng = np.random.default_rng(1)
    photos = [
        Photo(Path(f"{person}-{i}.jpg"), str(person), {"mfn": unit(*rng.normal(size=8))})
        for person in range(6)
        for i in range(4)
    ]
    raw = log_odds(["mfn"])
    threshold = stranger_threshold(photos, raw)
    scorer = on_strangers(raw, photos)
    # A probe scoring exactly the threshold lands on 80.
    probe, enrolled = photos[2], photos[4:6]
    shift = np.log(4.0) - threshold
    expected = 100.0 / (1.0 + np.exp(-(raw(probe, enrolled) + shift)))
    assert np.isclose(scorer(probe, enrolled), expected)
    held_out_best = [
        max(
            raw(p, [q for q in photos if q.label == other][:2])
            for other in "012345"
            if other != p.label
        )
        for p in photos
        if p.path.name[-5] in "23"
    ]
    assert np.isclose(threshold, np.percentile(held_out_best, 99))


def test_mesh_five_points_average_the_eye_contours() -> None:
    points = np.zeros((468, 2), np.float32)
    points[[33, 133, 159, 145]] = [[10, 50], [30, 50], [20, 45], [20, 55]]
    points[[362, 263, 386, 374]] = [[70, 50], [90, 50], [80, 45], [80, 55]]
    points[1], points[61], points[291] = [50, 70], [35, 90], [65, 90]
    five = mesh_five_points(points)
    assert five.shape == (5, 2)
    assert np.allclose(five, [[20, 50], [80, 50], [50, 70], [35, 90], [65, 90]])


def test_glint_chips_load_24_people_of_10() -> None:
    chips = datasets.load_glint_chips(datasets.DEFAULT_ROOT)
    assert len(chips) == 24 and all(len(paths) == 10 for paths in chips.values())
    assert all(p.exists() for paths in chips.values() for p in paths)
