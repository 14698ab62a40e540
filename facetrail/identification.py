"""From per-face scores to names: assign the faces of one photo to people one-to-one.

A person's enrolled photos reinforce each other. Where the backend has embeddings (local), a
face is scored against each person's template, the normalised mean of their enrolled
embeddings; elsewhere (Rekognition) by the mean similarity over the person's enrolled faces.
Either way no single enrolled photo decides alone. A person appears at most once in a photo, so
faces and people are matched with an optimal one-to-one assignment.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from facetrail.backends.base import FaceMatch

RUNNERS_UP = 3


@dataclass(frozen=True)
class Candidate:
    external_id: str
    similarity: float


@dataclass(frozen=True)
class Assignment:
    external_id: str | None
    similarity: float | None
    candidates: list[Candidate] = field(default_factory=list)


def person_scores(matches: Sequence[FaceMatch]) -> dict[str, float]:
    by_person: dict[str, list[float]] = defaultdict(list)
    for match in matches:
        if match.external_id is not None:
            by_person[match.external_id].append(match.similarity)
    return {person: float(np.mean(sims)) for person, sims in by_person.items()}


def assign(per_face_matches: Sequence[Sequence[FaceMatch]], threshold: float) -> list[Assignment]:
    """Name each face (or not) from its face matches; no person is named twice in one photo."""
    return assign_scores([person_scores(matches) for matches in per_face_matches], threshold)


def assign_scores(scores: Sequence[Mapping[str, float]], threshold: float) -> list[Assignment]:
    """Name each face (or not) from its per-person scores (0-100)."""
    people = sorted({person for face in scores for person in face})
    if not people:
        return [Assignment(None, None, []) for _ in scores]
    matrix = np.zeros((len(scores), len(people)))
    for i, face in enumerate(scores):
        for j, person in enumerate(people):
            matrix[i, j] = face.get(person, 0.0)
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    chosen = {int(r): int(c) for r, c in zip(rows, cols, strict=True) if matrix[r, c] >= threshold}
    out: list[Assignment] = []
    for i, face in enumerate(scores):
        ranked = sorted(face.items(), key=lambda kv: (-kv[1], kv[0]))
        if i in chosen:
            person = people[chosen[i]]
            similarity: float | None = float(matrix[i, chosen[i]])
            runners = [Candidate(p, s) for p, s in ranked if p != person][:RUNNERS_UP]
            out.append(Assignment(person, similarity, runners))
        else:
            out.append(Assignment(None, None, [Candidate(p, s) for p, s in ranked[:RUNNERS_UP]]))
    return out
