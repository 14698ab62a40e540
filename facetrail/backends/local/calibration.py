"""Cosine similarity -> Rekognition's 0-100 similarity scale, per embedder.

``similarity = 100 / (1 + exp(-(a * cos + b)))``: a logistic curve fitted (maximum likelihood)
on all same/different pairs of dlib's ``examples/johns`` (5 identities x 11 face chips:
275 same-person pairs, 1210 different-person pairs; nothing else scores that set). The value is
then a calibrated probability (x100) that the two faces are the same person, so Rekognition's
default threshold of 80 means "at least 80 % likely the same person" on data like that set.
Re-fit and print with ``python -m bench.calibrate``; docs/calibration.md has the numbers.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# (a, b) per embedder name, printed by bench/calibrate.py (Platt scaling, classes weighted
# equally). Similarity 80 is reached at cosine 0.643 (mobilefacenet) and 0.928 (dlib).
CURVES: dict[str, tuple[float, float]] = {
    "mobilefacenet": (22.2348, -12.9136),
    "dlib": (100.7222, -92.0544),
}


def similarity(embedder: str, cosine: float | npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """Calibrated similarity (0-100) for cosine similarities of ``embedder``'s vectors."""
    a, b = CURVES[embedder]
    z = a * np.asarray(cosine, np.float64) + b
    # exp of a large negative z overflows harmlessly to inf -> 0; clip keeps it quiet.
    return np.asarray(100.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0))), np.float64)
