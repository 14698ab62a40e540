"""From per-face scores to names: assign the faces of one photo to people one-to-one.

A person's enrolled photos reinforce each other. Where the backend has embeddings (local), a
face is scored against each person's template, the normalised mean of their enrolled
embeddings; elsewhere (Rekognition) by the mean similarity over the person's enrolled faces.
Either way no single enrolled photo decides alone. A person appears at most once in a photo, so
faces and people are matched with an optimal one-to-one assignment.

Corrections (``services/corrections.py``) come in as one :class:`FaceRule` per face: a face is
never named after a person it is "not", and a face that "is" someone is named so whatever the
scores say (and that person names no other face of the photo).
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


@dataclass(frozen=True)
class FaceRule:
    """What corrections say of one face: who it is (if anyone said), and who it is not."""

    is_person: str | None = None
    not_people: frozenset[str] = frozenset()


def person_scores(matches: Sequence[FaceMatch]) -> dict[str, float]:
    by_person: dict[str, list[float]] = defaultdict(list)
    for match in matches:
        if match.external_id is not None:
            by_person[match.external_id].append(match.similarity)
    return {person: float(np.mean(sims)) for person, sims in by_person.items()}


def assign(per_face_matches: Sequence[Sequence[FaceMatch]], threshold: float) -> list[Assignment]:
    """Name each face (or not) from its face matches; no person is named twice in one photo."""
    return assign_scores([person_scores(matches) for matches in per_face_matches], threshold)


def assign_scores(
    scores: Sequence[Mapping[str, float]],
    threshold: float,
    rules: Sequence[FaceRule | None] | None = None,
) -> list[Assignment]:
    """Name each face (or not) from its per-person scores (0-100), honouring ``rules``."""
    if rules is not None and any(rules):
        return _assign_with_rules(scores, threshold, rules)
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


def _assign_with_rules(
    scores: Sequence[Mapping[str, float]], threshold: float, rules: Sequence[FaceRule | None]
) -> list[Assignment]:
    # Who each face is not leaves its scores (and its runners-up) altogether.
    allowed = [
        {p: s for p, s in face.items() if rule is None or p not in rule.not_people}
        for face, rule in zip(scores, rules, strict=True)
    ]
    fixed: dict[int, str] = {}
    for i, rule in enumerate(rules):
        if rule is not None and rule.is_person and rule.is_person not in fixed.values():
            fixed[i] = rule.is_person
    taken = set(fixed.values())
    free = [i for i in range(len(scores)) if i not in fixed]
    named = assign_scores(
        [{p: s for p, s in allowed[i].items() if p not in taken} for i in free], threshold
    )
    out: list[Assignment | None] = [None] * len(scores)
    for i, assignment in zip(free, named, strict=True):
        out[i] = assignment
    for i, person in fixed.items():
        ranked = sorted(allowed[i].items(), key=lambda kv: (-kv[1], kv[0]))
        runners = [Candidate(p, s) for p, s in ranked if p != person][:RUNNERS_UP]
        out[i] = Assignment(person, allowed[i].get(person), runners)
    return [a for a in out if a is not None]
