"""Naming the faces of one photo against one collection, from our own records.

Matches name people through our face records (face id -> person), so renames and merges need no
change on the backend, and faces we no longer know (deleted people) name nobody. Where the
backend can score templates (local), each face is scored against each person's template: the
templates of a collection are one matrix in a ``VectorIndex`` per process, brought up to date
from the collection's change log (``collection_changes``) rather than rebuilt.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from facetrail.backends.base import Backend, Embedding, FaceMatch, FaceSearch
from facetrail.backends.local.vectors import from_blob
from facetrail.identification import (
    RUNNERS_UP,
    Assignment,
    FaceRule,
    assign_scores,
    person_scores,
)
from facetrail.models import Collection, CollectionChange, Face, Person
from facetrail.vectors import VectorIndex

# People scored per face: every person in collections up to this size (so small collections
# are scored exactly as before), else the best ones. A one-to-one assignment of n faces only
# ever needs each face's n best people, and the runners-up one more each.
TEMPLATE_CANDIDATES = 64
# Face matches an identify job asks for: every one where they are averaged per person
# (Rekognition), a few where templates name people and the matches only back them up.
SEARCH_DEPTH = 4096
SEARCH_DEPTH_WITH_TEMPLATES = 16


def search_depth(backend: Backend) -> int:
    return SEARCH_DEPTH_WITH_TEMPLATES if backend.scores_templates else SEARCH_DEPTH


@dataclass
class Templates:
    """One collection's person templates at one version: person id -> normalised mean."""

    version: int
    index: VectorIndex[int]
    names: dict[int, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class TemplateStats:
    """How templates were brought up to date in this process (tests and bench read these)."""

    reloads: int = 0
    deltas: int = 0


# (database, collection id, model version, exact limit) -> templates
_templates: dict[tuple[str, int, str, int], Templates] = {}
_templates_lock = threading.Lock()
stats = TemplateStats()


def _embeddings(
    session: Session, collection_id: int, recognizer: Backend, people: list[int] | None
) -> dict[int, tuple[str, list[Embedding]]]:
    query = (
        select(Person.id, Person.external_id, Face.embedding)
        .join(Person, Face.person_id == Person.id)
        .where(
            Face.collection_id == collection_id,
            Face.backend == recognizer.name,
            Face.model_version == recognizer.model_version,
            Face.embedding.is_not(None),
        )
    )
    if people is not None:
        query = query.where(Person.id.in_(people))
    grouped: dict[int, tuple[str, list[Embedding]]] = {}
    for person_id, external_id, blob in session.execute(query).tuples():
        if blob is not None:
            grouped.setdefault(person_id, (external_id, []))[1].append(from_blob(blob))
    return grouped


def _apply(templates: Templates, grouped: dict[int, tuple[str, list[Embedding]]]) -> None:
    ids = list(grouped)
    if ids:
        means = np.stack([np.stack(grouped[p][1]).mean(axis=0) for p in ids])
        templates.index.add(ids, means)
    templates.names.update({p: grouped[p][0] for p in ids})


def _changed_people(
    session: Session, collection_id: int, since: int, until: int
) -> list[int] | None:
    """People changed after version ``since`` up to ``until``; None when the log cannot say."""
    rows = session.execute(
        select(CollectionChange.version, CollectionChange.person_id).where(
            CollectionChange.collection_id == collection_id,
            CollectionChange.version > since,
            CollectionChange.version <= until,
        )
    ).tuples()
    versions: set[int] = set()
    people: set[int] = set()
    for version, person in rows:
        if person is None:
            return None
        versions.add(version)
        people.add(person)
    return sorted(people) if len(versions) == until - since else None


def person_templates(session: Session, collection_id: int, recognizer: Backend) -> Templates:
    """The collection's templates as of its current version, applying logged changes."""
    version = session.get_one(Collection, collection_id).version
    # Ids and versions repeat across databases (a process may serve several), so the database
    # is part of the key.
    database = session.get_bind().engine.url.render_as_string(hide_password=True)
    limit = recognizer.settings.vector_exact_limit
    key = (database, collection_id, recognizer.model_version, limit)
    with _templates_lock:
        cached = _templates.get(key)
    if cached is not None:
        with cached.lock:
            if cached.version == version:
                return cached
            # Templates of a collection that had no faces have no dimension yet: reload.
            if cached.version < version and cached.index.dim:
                changed = _changed_people(session, collection_id, cached.version, version)
                if changed is not None:
                    cached.index.remove(changed)
                    for person in changed:
                        cached.names.pop(person, None)
                    _apply(cached, _embeddings(session, collection_id, recognizer, changed))
                    cached.version = version
                    stats.deltas += 1
                    return cached
    grouped = _embeddings(session, collection_id, recognizer, None)
    dim = next((len(v[1][0]) for v in grouped.values()), 0)
    fresh = Templates(version=version, index=VectorIndex(dim, exact_limit=limit))
    _apply(fresh, grouped)
    stats.reloads += 1
    with _templates_lock:
        # Drop other model versions of this collection; keep other collections' entries.
        for stale in [k for k in _templates if k[:2] == key[:2] and k[3] == limit]:
            del _templates[stale]
        _templates[key] = fresh
    return fresh


def forget(collection_id: int) -> None:
    """Drop this process's templates of a collection (after a person's erasure)."""
    for key in [k for k in _templates if k[1] == collection_id]:
        del _templates[key]


def _template_scores(
    session: Session, collection_id: int, recognizer: Backend, searches: list[FaceSearch]
) -> list[dict[str, float]] | None:
    if not searches or any(s.embedding is None for s in searches):
        return None
    queries = np.stack([s.embedding for s in searches if s.embedding is not None])
    return template_scores(session, collection_id, recognizer, queries, len(searches))


def template_scores(
    session: Session,
    collection_id: int,
    recognizer: Backend,
    queries: Embedding,
    faces_per_photo: int,
) -> list[dict[str, float]] | None:
    """Per query embedding, person -> similarity (0-100) for its best-scoring people (enough
    for a photo of ``faces_per_photo`` faces to be assigned one-to-one with runners-up); None
    where the backend keeps no templates or the collection has no people."""
    if not recognizer.scores_templates:
        return None
    templates = person_templates(session, collection_id, recognizer)
    if not len(templates.index):
        return None
    if not len(queries):
        return []
    k = max(TEMPLATE_CANDIDATES, faces_per_photo + RUNNERS_UP + 1)
    with templates.lock:
        labels, cosines = templates.index.search(queries, k)
        names = [[templates.names[p] for p in row] for row in labels]
    similarity = recognizer.template_similarity(cosines)
    assert similarity is not None
    return [
        {name: float(s) for name, s in zip(row, sims, strict=False)}
        for row, sims in zip(names, np.atleast_2d(similarity), strict=True)
    ]


def owners(session: Session, collection_id: int, backend: str) -> dict[str, str]:
    """Face id -> the external id of the person it was enrolled as."""
    return dict(
        session.execute(
            select(Face.face_id, Person.external_id)
            .join(Person, Face.person_id == Person.id)
            .where(Face.collection_id == collection_id, Face.backend == backend)
        )
        .tuples()
        .all()
    )


def name_faces(
    session: Session,
    collection_id: int,
    recognizer: Backend,
    searches: list[FaceSearch],
    threshold: float,
    rules: list[FaceRule | None] | None = None,
) -> list[Assignment]:
    """Each face named (or not) from its scores, honouring corrections' ``rules`` per face."""
    scores = _template_scores(session, collection_id, recognizer, searches)
    if scores is None and searches and all(s.user_matches is not None for s in searches):
        # Searched among users (people's faces scored as one by the backend): a user is the
        # person whose external id it is, where that person is still in the collection.
        people = {
            recognizer.user_match_id(p): p
            for p in session.scalars(
                select(Person.external_id).where(Person.collection_id == collection_id)
            )
        }
        scores = [
            {people[m.user_id]: m.similarity for m in s.user_matches or [] if m.user_id in people}
            for s in searches
        ]
    if scores is None:
        known = owners(session, collection_id, recognizer.name)
        scores = [
            person_scores(
                [
                    FaceMatch(m.face_id, known[m.face_id], m.similarity)
                    for m in search.matches
                    if m.face_id in known
                ]
            )
            for search in searches
        ]
    return assign_scores(scores, threshold, rules)
