"""Scores: accuracy, ROC AUC, top-1 and IoU matching. Pure functions, no models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.datasets import PixelBox

# face_recognition's own decision rule: the same person at Euclidean distance <= 0.6.
BASELINE_TOLERANCE = 0.6


def accuracy(predictions: Sequence[bool | None], truths: Sequence[bool]) -> float:
    """Fraction right; ``None`` (no decision, e.g. no face found) always counts as wrong."""
    if not truths:
        return float("nan")
    right = sum(p is not None and p == t for p, t in zip(predictions, truths, strict=True))
    return right / len(truths)


def roc_auc(scores: Sequence[float], truths: Sequence[bool]) -> float:
    """Area under the ROC curve (higher score = more likely positive); ties count half.

    Computed as the Mann-Whitney U statistic over average ranks.
    """
    values = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(truths, dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    u = float(ranks[labels].sum()) - positives * (positives + 1) / 2.0
    return u / (positives * negatives)


def top1(predicted: Sequence[str | None], truths: Sequence[str]) -> float:
    """Fraction of probes named correctly; unknown (``None``) is wrong."""
    if not truths:
        return float("nan")
    right = sum(p is not None and p == t for p, t in zip(predicted, truths, strict=True))
    return right / len(truths)


def open_set_accuracy(predicted: Sequence[str | None], truths: Sequence[str | None]) -> float:
    """Fraction of probes with the right outcome: the right name, or unknown for a stranger."""
    if not truths:
        return float("nan")
    return sum(p == t for p, t in zip(predicted, truths, strict=True)) / len(truths)


def iou(a: PixelBox, b: PixelBox) -> float:
    x0, y0 = max(a.left, b.left), max(a.top, b.top)
    x1 = min(a.left + a.width, b.left + b.width)
    y1 = min(a.top + a.height, b.top + b.height)
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def greedy_matches(
    detections: Sequence[PixelBox], truths: Sequence[PixelBox], min_iou: float = 0.5
) -> int:
    """True positives under one-to-one greedy matching: highest IoU pairs first."""
    overlaps = [(iou(d, t), i, j) for i, d in enumerate(detections) for j, t in enumerate(truths)]
    candidates = sorted((o for o in overlaps if o[0] >= min_iou), reverse=True)
    used_d: set[int] = set()
    used_t: set[int] = set()
    for _, i, j in candidates:
        if i not in used_d and j not in used_t:
            used_d.add(i)
            used_t.add(j)
    return len(used_d)


@dataclass(frozen=True)
class DetectionCounts:
    true_positives: int
    detections: int
    truths: int

    @property
    def recall(self) -> float:
        return self.true_positives / self.truths if self.truths else float("nan")

    @property
    def precision(self) -> float:
        return self.true_positives / self.detections if self.detections else float("nan")

    def __add__(self, other: DetectionCounts) -> DetectionCounts:
        return DetectionCounts(
            self.true_positives + other.true_positives,
            self.detections + other.detections,
            self.truths + other.truths,
        )


def ratio(ours: float, theirs: float) -> float:
    """facetrail / baseline, NaN where undefined."""
    if theirs == 0 or np.isnan(theirs) or np.isnan(ours):
        return float("nan")
    return ours / theirs
