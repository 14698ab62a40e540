"""The hand-label scoring of bench.attributes: the cut and dead-zone rules, and the label files."""

from __future__ import annotations

import csv

from bench.attributes import CHOOSE_SETS, LABELS, fewest_errors_cut, gaze_side


def test_fewest_errors_cut_takes_the_middle_of_the_widest_tie() -> None:
    # Separable: the cut lies in the gap between the classes, at its middle.
    assert fewest_errors_cut([0.1, 0.2, 0.5, 0.6], [False, False, True, True]) == 0.35
    # One error whichever way (0.3 is positive among negatives): the wider gap wins.
    cut = fewest_errors_cut([0.1, 0.3, 0.32, 0.6, 0.7], [False, True, False, True, True])
    assert cut == (0.32 + 0.6) / 2


def test_gaze_side_is_the_image_direction_beyond_the_dead_zone() -> None:
    assert gaze_side(25.0, 20.0) == "right" and gaze_side(-25.0, 20.0) == "left"
    assert gaze_side(19.0, 20.0) == gaze_side(-19.0, 20.0) == "centre"


def test_label_files_keep_the_groups_apart() -> None:
    """Every labelled face's group follows its set, so nothing a cut was chosen on is scored."""
    for name, field, words in (
        ("eyes_open.csv", "eyes", {"open", "closed", "unsure"}),
        ("eye_direction.csv", "across", {"left", "centre", "right", "unsure"}),
    ):
        with (LABELS / name).open() as handle:
            rows = list(csv.DictReader(handle))
        assert rows and {r[field] for r in rows} <= words
        for row in rows:
            assert (row["group"] == "choose") == (row["dataset"] in CHOOSE_SETS)
