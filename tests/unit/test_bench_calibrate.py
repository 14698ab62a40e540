"""bench.calibrate's template scores: rotating enrolment, enrolled faces never probed."""

from __future__ import annotations

import numpy as np

from bench.calibrate import template_scores


def test_template_scores_rotate_enrolment_and_leave_enrolled_faces_out() -> None:
    # Two people, three faces each, on orthogonal axes: a template of two of a person's faces
    # scores their third face 1 and the other person's faces 0.
    vectors = np.array([[1, 0]] * 3 + [[0, 1]] * 3, np.float32)
    labels = ["a"] * 3 + ["b"] * 3
    cos, same = template_scores(vectors, labels, 2)
    # Per person, 3 starting faces x 4 probes (6 faces less the 2 enrolled).
    assert len(cos) == 2 * 3 * 4
    assert same.sum() == 2 * 3  # one own face left per enrolment
    np.testing.assert_allclose(cos[same == 1], 1.0, atol=1e-6)
    np.testing.assert_allclose(cos[same == 0], 0.0, atol=1e-6)


def test_template_scores_skip_people_with_too_few_faces() -> None:
    vectors = np.eye(3, dtype=np.float32)
    cos, same = template_scores(vectors, ["a", "a", "b"], 2)
    assert len(cos) == 0 and same.sum() == 0
