"""Naming the faces of one photo against one collection, from our own records.

Matches name people through our face records (face id -> person), so renames and merges need no
change on the backend, and faces we no longer know (deleted people) name nobody. Where the
backend can score templates (local), each face is scored against each person's template: the
templates of a collection are one matrix in a ``VectorIndex`` per process, brought up to date
from the collection's change log (``collection_changes``) rather than rebuilt.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from facetrail.backends.base import Backend, Embedding, FaceMatch, FaceSearch
from facetrail.db import database_of
from facetrail.identification import (
    RUNNERS_UP,
    Assignment,
    FaceRule,
    assign_scores,
    person_scores,
)
from facetrail.models import Collection, CollectionChange, Face, Person
from facetrail.settings import Settings
from facetrail.vectors import VectorIndex, trim_heap
from facetrail.vectors.snapshots import Covered, Snapshots

# People scored per face: every person in collections up to this size (so small collections
# are scored exactly as before), else the best ones. A one-to-one assignment of n faces only
# ever needs each face's n best people, and the runners-up one more each.
TEMPLATE_CANDIDATES = 64
# Face matches an identify job asks for: every one where they are averaged per person
# (Rekognition); none where templates name people, since a collection with no templates has no
# enrolled person for a match to name either (and the face index need not be loaded at all).
SEARCH_DEPTH = 4096
SEARCH_DEPTH_WITH_TEMPLATES = 0


def search_depth(backend: Backend) -> int:
    return SEARCH_DEPTH_WITH_TEMPLATES if backend.scores_templates else SEARCH_DEPTH


@dataclass
class Templates:
    """One collection's person templates at one version: person id -> normalised mean."""

    version: int
    index: VectorIndex[int]
    names: dict[int, str] = field(default_factory=dict)
    covered: Covered = field(default_factory=Covered)
    # external id -> person id: ``names`` the other way round, kept with it.
    ids: dict[str, int] = field(init=False)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.ids = {name: person for person, name in self.names.items()}

    def extra(self) -> dict[str, Any]:
        return {"people": list(self.names), "names": list(self.names.values())}


@dataclass
class TemplateStats:
    """How templates were brought up to date in this process (tests and bench read these)."""

    reloads: int = 0  # loads of every person, from a snapshot or the database
    snapshot_loads: int = 0
    deltas: int = 0


# (database, collection id, model version, exact limit) -> templates
_templates: dict[tuple[str, int, str, int], Templates] = {}
_templates_lock = threading.Lock()
stats = TemplateStats()
# Embeddings read from the database at a time when templates are computed.
LOAD_CHUNK = 20_000


def _group(session: Session, collection: Collection) -> tuple[str, ...]:
    """What a collection's template snapshots are of (``Snapshots`` groups)."""
    created = collection.created_at.isoformat()
    return ("templates", database_of(session), str(collection.id), created)


def _load_templates(
    session: Session,
    collection_id: int,
    recognizer: Backend,
    people: list[int] | None,
    templates: Templates,
) -> None:
    """Add the templates of ``people`` (None: everyone): embeddings are streamed in chunks and
    summed per person into one matrix, none kept as a Python object."""
    names_query = select(Person.id, Person.external_id).where(Person.collection_id == collection_id)
    where = [
        Face.collection_id == collection_id,
        Face.backend == recognizer.name,
        Face.model_version == recognizer.model_version,
        Face.embedding.is_not(None),
    ]
    if people is not None:
        names_query = names_query.where(Person.id.in_(people))
        where.append(Face.person_id.in_(people))
    names = dict(session.execute(names_query).tuples().all())
    ids = np.fromiter(names, dtype=np.int64, count=len(names))
    position = {person: i for i, person in enumerate(names)}
    sums: npt.NDArray[np.float32] | None = None
    counts = np.zeros(len(names), dtype=np.int64)
    rows = session.execute(
        select(Face.person_id, Face.embedding).where(*where).execution_options(yield_per=LOAD_CHUNK)
    )
    for chunk in rows.partitions(LOAD_CHUNK):
        # A face of someone added since ``names`` was read comes again as a logged change.
        known = [r for r in chunk if r.person_id in position]
        if not known:
            continue
        dim = len(known[0].embedding) // 4
        if sums is None:
            sums = np.zeros((len(names), dim), dtype=np.float32)
        matrix = np.frombuffer(b"".join(r.embedding for r in known), dtype=np.float32)
        at = np.array([position[r.person_id] for r in known], dtype=np.int64)
        order = np.argsort(at, kind="stable")
        at, matrix = at[order], matrix.reshape(len(known), dim)[order]
        starts = np.flatnonzero(np.r_[True, at[1:] != at[:-1]])
        sums[at[starts]] += np.add.reduceat(matrix, starts, axis=0)
        counts += np.bincount(at, minlength=len(names))
    if sums is None:
        return
    have = np.flatnonzero(counts)
    if not templates.index.dim:
        templates.index = VectorIndex(sums.shape[1], exact_limit=templates.index.exact_limit)
    templates.index.add(ids[have].tolist(), sums[have] / counts[have, None])
    added = {int(p): names[int(p)] for p in ids[have]}
    templates.names.update(added)
    templates.ids.update({name: person for person, name in added.items()})


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


def _apply_changes(
    session: Session, collection_id: int, recognizer: Backend, templates: Templates, version: int
) -> bool:
    """Bring templates up to ``version`` from the change log; False if the log cannot say."""
    changed = _changed_people(session, collection_id, templates.version, version)
    if changed is None:
        return False
    had = [p for p in changed if p in templates.index]
    templates.index.remove(changed)
    for person in changed:
        name = templates.names.pop(person, None)
        if name is not None:
            templates.ids.pop(name, None)
    _load_templates(session, collection_id, recognizer, changed, templates)
    if any(p not in templates.index for p in had):
        templates.covered.removed_at = version  # someone's template went (erased, merged)
    templates.version = version
    return True


def _update_snapshot(
    session: Session, collection: Collection, recognizer: Backend, templates: Templates
) -> None:
    collection_id, created_at, position = collection.id, collection.created_at, templates.version
    bind = session.get_bind()

    def still_valid() -> bool:
        # Whether everyone changed since ``position`` still exists (no erasure or merge since).
        with Session(bind) as check:
            current = check.get(Collection, collection_id)
            if current is None or current.created_at != created_at:
                return False
            changed = set(
                check.scalars(
                    select(CollectionChange.person_id).where(
                        CollectionChange.collection_id == collection_id,
                        CollectionChange.version > position,
                    )
                )
            )
            if None in changed:
                return False
            present = check.scalar(
                select(func.count()).select_from(Person).where(Person.id.in_(changed))
            )
            return present == len(changed)

    Snapshots.for_settings(recognizer.settings).update(
        _group(session, collection),
        _variant(recognizer),
        position,
        templates.index,
        templates.extra,
        templates.covered,
        still_valid=still_valid,
    )


def _variant(recognizer: Backend) -> tuple[str, str, int]:
    return (recognizer.name, recognizer.model_version, recognizer.settings.template_exact_limit)


def _load(session: Session, collection: Collection, recognizer: Backend) -> Templates:
    limit = recognizer.settings.template_exact_limit
    snapshot = Snapshots.for_settings(recognizer.settings).load(
        _group(session, collection), _variant(recognizer), collection.version, exact_limit=limit
    )
    if snapshot is not None:
        names = dict(zip(snapshot.extra["people"], snapshot.extra["names"], strict=True))
        loaded = Templates(snapshot.position, snapshot.index, names, Covered(snapshot.position))
        if loaded.version == collection.version or _apply_changes(
            session, collection.id, recognizer, loaded, collection.version
        ):
            stats.snapshot_loads += 1
            return loaded
    fresh = Templates(version=collection.version, index=VectorIndex(0, exact_limit=limit))
    _load_templates(session, collection.id, recognizer, None, fresh)
    trim_heap()
    return fresh


def _key(session: Session, collection_id: int, recognizer: Backend) -> tuple[str, int, str, int]:
    limit = recognizer.settings.template_exact_limit
    return (database_of(session), collection_id, recognizer.model_version, limit)


def person_templates(session: Session, collection_id: int, recognizer: Backend) -> Templates:
    """The collection's templates as of its current version, applying logged changes."""
    collection = session.get_one(Collection, collection_id)
    version = collection.version
    key = _key(session, collection_id, recognizer)
    limit = key[3]
    with _templates_lock:
        cached = _templates.get(key)
    if cached is not None:
        with cached.lock:
            if cached.version == version:
                return cached
            if cached.version < version and _apply_changes(
                session, collection_id, recognizer, cached, version
            ):
                stats.deltas += 1
                _update_snapshot(session, collection, recognizer, cached)
                return cached
    fresh = _load(session, collection, recognizer)
    _update_snapshot(session, collection, recognizer, fresh)
    stats.reloads += 1
    with _templates_lock:
        # Drop other model versions of this collection; keep other collections' entries.
        for stale in [k for k in _templates if k[:2] == key[:2] and k[3] == limit]:
            del _templates[stale]
        _templates[key] = fresh
    return fresh


def person_ids(
    session: Session, collection_id: int, recognizer: Backend, names: Iterable[str]
) -> dict[str, int]:
    """External id -> person id of the collection's people called ``names``: from this
    process's templates where they are current (an identification has just scored them), the
    rest from the database."""
    wanted = set(names)
    found: dict[str, int] = {}
    with _templates_lock:
        cached = _templates.get(_key(session, collection_id, recognizer))
    if cached is not None and wanted:
        version = session.get_one(Collection, collection_id).version
        with cached.lock:
            if cached.version == version:
                found = {name: cached.ids[name] for name in wanted if name in cached.ids}
    rest = wanted - found.keys()
    if rest:
        found.update(
            session.execute(
                select(Person.external_id, Person.id).where(
                    Person.collection_id == collection_id, Person.external_id.in_(rest)
                )
            )
            .tuples()
            .all()
        )
    return found


def forget(collection_id: int) -> None:
    """Drop this process's templates of a collection (after a person's erasure)."""
    for key in [k for k in _templates if k[1] == collection_id]:
        del _templates[key]


def drop_snapshots(session: Session, settings: Settings, collection: Collection) -> None:
    """Delete the collection's template snapshots once ``session`` commits (they hold the
    templates of people being erased, or of a collection being deleted)."""
    group = _group(session, collection)

    def drop(_: Session) -> None:
        Snapshots.for_settings(settings).drop(group)

    event.listen(session, "after_commit", drop, once=True)


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
