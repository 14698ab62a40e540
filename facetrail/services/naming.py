"""Naming the faces of one photo against one collection, from our own records.

Matches name people through our face records (face id -> person), so renames and merges need no
change on the backend, and faces we no longer know (deleted people) name nobody. Where the
backend can score templates (local), each face is scored against each person's template.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from facetrail.backends.base import Backend, Embedding, FaceMatch, FaceSearch
from facetrail.backends.local.vectors import from_blob
from facetrail.identification import Assignment, assign_scores, person_scores
from facetrail.models import Collection, Face, Person

# (database, collection id, collection version, model version) -> person -> embeddings (k, dim)
_templates: dict[tuple[str, int, int, str], dict[str, Embedding]] = {}


def enrolled_embeddings(
    session: Session, collection_id: int, recognizer: Backend
) -> dict[str, Embedding]:
    version = session.get_one(Collection, collection_id).version
    # Ids and versions repeat across databases (a process may serve several), so the database
    # is part of the key.
    database = session.get_bind().engine.url.render_as_string(hide_password=True)
    key = (database, collection_id, version, recognizer.model_version)
    cached = _templates.get(key)
    if cached is None:
        rows = session.execute(
            select(Person.external_id, Face.embedding)
            .join(Person, Face.person_id == Person.id)
            .where(
                Face.collection_id == collection_id,
                Face.backend == recognizer.name,
                Face.model_version == recognizer.model_version,
                Face.embedding.is_not(None),
            )
        ).tuples()
        grouped: dict[str, list[Embedding]] = {}
        for person, blob in rows:
            if blob is not None:
                grouped.setdefault(person, []).append(from_blob(blob))
        cached = {person: np.stack(vectors) for person, vectors in grouped.items()}
        # Drop versions no longer current; keep other collections' entries.
        for stale in [k for k in _templates if k[:2] == key[:2]]:
            del _templates[stale]
        _templates[key] = cached
    return cached


def forget(collection_id: int) -> None:
    """Drop this process's templates of a collection (after a person's erasure)."""
    for key in [k for k in _templates if k[1] == collection_id]:
        del _templates[key]


def _template_scores(
    session: Session, collection_id: int, recognizer: Backend, searches: list[FaceSearch]
) -> list[dict[str, float]] | None:
    if not searches or any(s.embedding is None for s in searches):
        return None
    people = enrolled_embeddings(session, collection_id, recognizer)
    if not people:
        return None
    queries = np.stack([s.embedding for s in searches if s.embedding is not None])
    scored = recognizer.score_people(queries, people)
    if scored is None:
        return None
    return [{p: float(v[i]) for p, v in scored.items()} for i in range(len(searches))]


def name_faces(
    session: Session,
    collection_id: int,
    recognizer: Backend,
    searches: list[FaceSearch],
    threshold: float,
) -> list[Assignment]:
    scores = _template_scores(session, collection_id, recognizer, searches)
    if scores is None and searches and all(s.user_matches is not None for s in searches):
        # Searched among users (people's faces scored as one by the backend): a user is the
        # person whose external id it is, where that person is still in the collection.
        people = set(
            session.scalars(select(Person.external_id).where(Person.collection_id == collection_id))
        )
        scores = [
            {m.user_id: m.similarity for m in s.user_matches or [] if m.user_id in people}
            for s in searches
        ]
    if scores is None:
        owners = dict(
            session.execute(
                select(Face.face_id, Person.external_id)
                .join(Person, Face.person_id == Person.id)
                .where(Face.collection_id == collection_id, Face.backend == recognizer.name)
            )
            .tuples()
            .all()
        )
        scores = [
            person_scores(
                [
                    FaceMatch(m.face_id, owners[m.face_id], m.similarity)
                    for m in search.matches
                    if m.face_id in owners
                ]
            )
            for search in searches
        ]
    return assign_scores(scores, threshold)
