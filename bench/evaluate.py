"""Accuracy sections: run one system over a data set and score it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.datasets import BoxedImage, IdentitySplit, Pair
from bench.metrics import (
    DetectionCounts,
    accuracy,
    greedy_matches,
    open_set_accuracy,
    roc_auc,
    top1,
)
from bench.systems import System

IOU = 0.5


@dataclass(frozen=True)
class Verification:
    accuracy: float
    auc: float
    pairs: int
    no_face: int
    false_accepts: int  # different people, decided "same"
    false_rejects: int  # same person, decided "different" (no-face pairs not included)


@dataclass(frozen=True)
class Identification:
    top1: float
    rank1: float  # the best-ranked person is right, whatever the threshold
    probes: int
    no_face: int
    failed: int
    enroll_failures: int
    first_error: str
    open_set: float = float("nan")  # strangers (clusters never enrolled) must stay unknown
    strangers_named: int = 0
    open_probes: int = 0


def verification(system: System, pairs: Sequence[Pair]) -> Verification:
    """Accuracy at the system's own rule (no face = wrong) and ROC AUC.

    For the AUC a pair without a face gets a score below every real one.
    """
    outcomes = [system.compare(pair) for pair in pairs]
    truths = [pair.same for pair in pairs]
    real = [o.score for o in outcomes if o.score is not None]
    floor = min(real, default=0.0) - 1.0
    scores = [floor if o.score is None else o.score for o in outcomes]
    return Verification(
        accuracy=accuracy([o.same for o in outcomes], truths),
        auc=roc_auc(scores, truths),
        pairs=len(pairs),
        no_face=sum(1 for o in outcomes if o.score is None),
        false_accepts=sum(1 for o, t in zip(outcomes, truths, strict=True) if o.same and not t),
        false_rejects=sum(
            1 for o, t in zip(outcomes, truths, strict=True) if o.same is False and t
        ),
    )


def identification(
    system: System, split: IdentitySplit, open_split: tuple[IdentitySplit, frozenset[str]]
) -> Identification:
    outcome = system.identify(split.enroll, [probe.path for probe in split.probes])
    truths = [probe.label for probe in split.probes]
    opened, strangers = open_split
    open_outcome = system.identify(opened.enroll, [probe.path for probe in opened.probes])
    open_truths = [None if p.label in strangers else p.label for p in opened.probes]
    return Identification(
        open_set=open_set_accuracy(open_outcome.predictions, open_truths),
        strangers_named=sum(
            1
            for p, t in zip(open_outcome.predictions, open_truths, strict=True)
            if t is None and p is not None
        ),
        open_probes=len(opened.probes),
        top1=top1(outcome.predictions, truths),
        rank1=top1(outcome.ranked_first, truths) if outcome.ranked_first else float("nan"),
        probes=len(split.probes),
        no_face=outcome.probes_without_face,
        failed=outcome.probes_failed,
        enroll_failures=outcome.enroll_failures,
        first_error=outcome.first_error,
    )


def detection(system: System, images: Sequence[BoxedImage]) -> DetectionCounts:
    total = DetectionCounts(0, 0, 0)
    for image in images:
        found = system.detect(image.path)
        matched = greedy_matches(found, image.boxes, IOU)
        total = total + DetectionCounts(matched, len(found), len(image.boxes))
    return total
