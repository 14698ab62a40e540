"""Search of the past: every face a collection's identify jobs found, searched by a face.

Identify jobs keep each face's embedding, box, job and photo (``face_results``). Those of one
collection, from the model it searches with, are one ``VectorIndex`` per process, kept current
like the collections' own vectors (``facetrail.vectors.logged``): every transaction that adds
results with embeddings (an identify item, a re-run) or removes them (an erasure) logs them in
``past_face_changes`` and bumps ``collections.past_generation``, and each process applies the
deltas at its next search.

A query is one or more embeddings: the largest face of a photo, a person's enrolled faces, or
any other set of faces (a cluster of unknown faces passes its faces' embeddings to
:func:`search`). Several faces search as their template (the normalised mean, as identify scores
people), or each on its own (``combine="any"``, a face's best similarity counts). Every result
at or above the threshold is returned, on identify's calibrated 0-100 scale: a face found at 80
would have been named at identify's default threshold had that person been its best match.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from sqlalchemy import Delete, Select, bindparam, delete, select, update
from sqlalchemy.orm import Session

from facetrail.backends import backend_for
from facetrail.backends.base import Backend, Embedding
from facetrail.backends.local.vectors import from_blob
from facetrail.db import database_of
from facetrail.errors import InvalidParameterError, NoFaceError, UnsupportedOperationError
from facetrail.images import LoadedImage, open_bytes, open_image
from facetrail.jobs.base import CollectionName, ImageRef, Name, RequestId, UploadedImage
from facetrail.models import (
    Collection,
    Face,
    FaceResult,
    Job,
    JobItem,
    PastFaceChange,
)
from facetrail.models.base import table
from facetrail.services import audit
from facetrail.services.records import find_person, get_collection
from facetrail.settings import Settings
from facetrail.vectors import logged, normalise, template
from facetrail.vectors.logged import (
    LoggedVectors,
    Rows,
    VectorLog,
    VectorSet,
    chunks,
    stack_blobs,
)

# Neighbours asked for first; a query whose last neighbour still clears the threshold asks for
# FANOUT times more, until one falls below it or the index is exhausted.
FIRST_K = 256
FANOUT = 4
# Matched results read back per query (keeps IN lists well inside SQLite's variable limit).
READ_CHUNK = 5000

Combine = Literal["template", "any"]


# The change log ----------------------------------------------------------------------------
_collections = table(Collection)
# A collection's past generation, one up (built once: each identify item runs it).
_BUMP_PAST = (
    update(_collections)
    .where(_collections.c.id == bindparam("collection_id"))
    # Not a change to whom the collection knows: its updated_at stays.
    .values(
        past_generation=_collections.c.past_generation + 1,
        updated_at=_collections.c.updated_at,
    )
    .returning(_collections.c.past_generation)
)


def log_changes(
    session: Session, collection_id: int, added: Sequence[int], removed: Sequence[int]
) -> None:
    """Log face results added to or removed from a collection's past faces (nothing to log:
    no generation is spent, since a reader bridges a gap only where each generation logged)."""
    if not added and not removed:
        return

    def prune(through: int) -> Delete:
        return delete(PastFaceChange).where(
            PastFaceChange.collection_id == collection_id, PastFaceChange.generation <= through
        )

    logged.log_changes(
        session,
        _BUMP_PAST,
        PastFaceChange,
        lambda generation, result_id, added: {
            "collection_id": collection_id,
            "generation": generation,
            "face_result_id": result_id,
            "added": added,
        },
        added,
        removed,
        prune,
        {"collection_id": collection_id},
    )


def log_added_items(session: Session, collection_id: int, item_ids: Iterable[int]) -> None:
    """Log the results with embeddings that ``item_ids`` just wrote (flushed, uncommitted)."""
    ids = list(item_ids)
    if not ids:
        return
    session.flush()
    added = session.scalars(
        select(FaceResult.id)
        .where(FaceResult.job_item_id.in_(ids), FaceResult.embedding.is_not(None))
        .order_by(FaceResult.id)
    ).all()
    log_changes(session, collection_id, list(added), [])


class _PastLog(VectorLog[int, None]):
    def __init__(self, collection_id: int, model_version: str) -> None:
        self.collection_id = collection_id
        self.model_version = model_version

    def _select(self) -> Select[tuple[int, bytes | None]]:
        return (
            select(FaceResult.id, FaceResult.embedding)
            .join(JobItem, FaceResult.job_item_id == JobItem.id)
            .join(Job, JobItem.job_id == Job.id)
            .where(
                Job.collection_id == self.collection_id,
                FaceResult.model_version == self.model_version,
                FaceResult.embedding.is_not(None),
            )
        )

    @staticmethod
    def _rows(rows: Sequence[tuple[int, bytes | None]]) -> Rows[int, None]:
        found = [(i, b) for i, b in rows if b is not None]
        return Rows([i for i, _ in found], stack_blobs([b for _, b in found]), [None] * len(found))

    def load(self, session: Session) -> Iterator[Rows[int, None]]:
        return chunks(session, self._select().order_by(FaceResult.id), self._rows)

    def changes(
        self, session: Session, after: int, upto: int, limit: int
    ) -> Sequence[tuple[int, int, bool]]:
        return (
            session.execute(
                select(
                    PastFaceChange.generation, PastFaceChange.face_result_id, PastFaceChange.added
                )
                .where(
                    PastFaceChange.collection_id == self.collection_id,
                    PastFaceChange.generation > after,
                    PastFaceChange.generation <= upto,
                )
                .order_by(PastFaceChange.id)
                .limit(limit)
            )
            .tuples()
            .all()
        )

    def rows(self, session: Session, labels: Sequence[int]) -> Rows[int, None]:
        query = self._select().where(FaceResult.id.in_(list(labels)))
        return self._rows(session.execute(query).tuples().all())


# One cache per exact limit (settings may differ between callers of one process).
_caches: dict[int, LoggedVectors[int, None]] = {}
_caches_lock = threading.Lock()


def cache(settings: Settings) -> LoggedVectors[int, None]:
    """This process's past-faces indexes for ``settings``' exact limit (tests read its stats)."""
    limit = settings.vector_exact_limit
    with _caches_lock:
        if limit not in _caches:
            _caches[limit] = LoggedVectors(limit)
        return _caches[limit]


def _family(session: Session, collection_id: int) -> tuple[str, int]:
    return (database_of(session), collection_id)


def past_faces(
    session: Session, settings: Settings, collection: Collection, model_version: str
) -> VectorSet[int, None]:
    """The collection's past faces from ``model_version`` as of its past generation."""
    # A collection made again under a reused id differs by when it was made.
    key = (_family(session, collection.id), (model_version, collection.created_at))
    log = _PastLog(collection.id, model_version)
    return cache(settings).get(session, key, collection.past_generation, log)


def forget(session: Session, collection_id: int) -> None:
    """Drop this process's past faces of a collection (after an erasure, so it keeps none)."""
    family = _family(session, collection_id)
    with _caches_lock:
        caches = list(_caches.values())
    for entry in caches:
        entry.forget(family)


# Queries -----------------------------------------------------------------------------------
def recognizer(settings: Settings, collection: Collection) -> Backend:
    """The collection's backend, checked to keep the embeddings past search needs."""
    backend = backend_for(settings, collection.backend, dict(collection.backend_options))
    if not backend.scores_templates:
        raise UnsupportedOperationError(
            f"searching the past needs face embeddings, which the {backend.name} backend does "
            "not give (use a local collection)"
        )
    return backend


def image_query(backend: Backend, backend_collection_id: str, image: LoadedImage) -> Embedding:
    """The embedding of the largest face of ``image`` (1, dim); NoFaceError without one."""
    found = backend.search_faces_by_image(backend_collection_id, image, max_faces=1)
    if found.embedding is None:
        raise UnsupportedOperationError(f"the {backend.name} backend gives no face embeddings")
    return normalise(found.embedding)


def person_query(
    session: Session, collection: Collection, backend: Backend, external_id: str
) -> Embedding:
    """A person's enrolled embeddings from the backend's model (n, dim)."""
    person = find_person(session, collection, external_id)
    if person is None:
        raise InvalidParameterError(f"no person {external_id!r} in {collection.name!r}")
    blobs = session.scalars(
        select(Face.embedding).where(
            Face.person_id == person.id,
            Face.backend == backend.name,
            Face.model_version == backend.model_version,
            Face.embedding.is_not(None),
        )
    ).all()
    if not blobs:
        raise NoFaceError(f"{external_id!r} has no enrolled face from {backend.model_version}")
    return np.stack([from_blob(b) for b in blobs if b is not None])


# The search --------------------------------------------------------------------------------
def _within(
    vectors: VectorSet[int, None], backend: Backend, queries: Embedding, threshold: float
) -> dict[int, float]:
    """Every label at or above ``threshold`` (0-100) for any query: label -> best similarity."""
    best: dict[int, float] = {}
    size = len(vectors.index)
    k = min(size, FIRST_K)
    while k > 0:
        with vectors.lock:
            labels, cosines = vectors.index.search(queries, k)
        sims = np.atleast_2d(np.asarray(backend.template_similarity(cosines), dtype=np.float64))
        more = False
        for row, scores in zip(labels, sims, strict=True):
            for label, score in zip(row, scores, strict=False):
                if score >= threshold and score > best.get(label, -1.0):
                    best[label] = float(score)
            # A full row whose last neighbour still clears the threshold may have more beyond.
            more |= len(row) == k and bool(scores[k - 1] >= threshold)
        if not more or k >= size:
            break
        k = min(size, k * FANOUT)
    return best


def search(
    session: Session,
    settings: Settings,
    collection: Collection,
    backend: Backend,
    queries: Embedding,
    *,
    threshold: float | None = None,
    limit: int | None = None,
    combine: Combine = "template",
) -> dict[str, Any]:
    """Every past face of ``collection`` that matches ``queries`` (n, dim) at ``threshold``.

    ``combine="template"`` searches with the faces' normalised mean (as identify scores a
    person), ``"any"`` with each face, keeping a result's best similarity. The same face of the
    same photo in several jobs (a re-run, a photo identified twice) is one match, reported
    from its latest job with every job it was found in. Best matches first; ``limit`` keeps
    the first ones.
    """
    threshold = settings.match_threshold if threshold is None else threshold
    matrix = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    if combine == "template" and len(matrix) > 1:
        matrix = template(matrix)[None, :]
    vectors = past_faces(session, settings, collection, backend.model_version)
    found = _within(vectors, backend, normalise(matrix), threshold) if len(matrix) else {}
    matches = _describe(session, found)
    if limit is not None:
        matches = matches[:limit]
    return {
        "collection": collection.name,
        "model_version": backend.model_version,
        "threshold": threshold,
        "faces_searched": len(vectors.index),
        "matches": matches,
    }


def _describe(session: Session, found: dict[int, float]) -> list[dict[str, Any]]:
    """Matched results with their job, photo and box; one entry per face of a photo."""
    ids = sorted(found)
    rows: list[tuple[FaceResult, JobItem]] = []
    for start in range(0, len(ids), READ_CHUNK):
        chunk = ids[start : start + READ_CHUNK]
        rows += session.execute(
            select(FaceResult, JobItem)
            .join(JobItem, FaceResult.job_item_id == JobItem.id)
            .where(FaceResult.id.in_(chunk))
        ).tuples()
    faces: dict[tuple[Any, ...], list[tuple[FaceResult, JobItem]]] = {}
    for result, item in rows:
        photo: tuple[Any, ...] = (
            ("image", item.image_id) if item.image_id is not None else ("item", item.id)
        )
        box = (round(result.box_left, 3), round(result.box_top, 3))
        faces.setdefault((*photo, *box), []).append((result, item))
    out: list[dict[str, Any]] = []
    for seen in faces.values():
        seen.sort(key=lambda pair: (pair[1].job_id, pair[0].id))
        result, item = seen[-1]
        out.append(
            {
                "face_result_id": result.id,
                "job_id": item.job_id,
                "image": item.source,
                "box": {
                    "left": round(result.box_left, 4),
                    "top": round(result.box_top, 4),
                    "width": round(result.box_width, 4),
                    "height": round(result.box_height, 4),
                },
                "similarity": round(max(found[r.id] for r, _ in seen), 2),
                "person": result.person_external_id,
                "jobs": sorted({i.job_id for _, i in seen}),
            }
        )
    out.sort(key=lambda m: (-m["similarity"], -m["job_id"], m["face_result_id"]))
    return out


# Requests (the Python API, the CLI and the facetrail.search_past task) ----------------------
class PastSearchRequest(BaseModel):
    """What to look for in a collection's past: a photo's largest face, a person, or a cluster
    of unknown faces (``unknown-42``: its faces' embeddings, as a template)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    collection: CollectionName
    image: ImageRef | None = None
    person: Name | None = None
    cluster: Annotated[str, StringConstraints(min_length=1, max_length=40)] | int | None = None
    # On identify's 0-100 similarity scale; the settings' match_threshold when absent.
    threshold: Annotated[float, Field(ge=0, le=100, strict=True)] | None = None
    limit: Annotated[int, Field(ge=1, strict=True)] | None = None
    request_id: RequestId | None = None
    actor: Name | None = None

    @model_validator(mode="after")
    def _one_query(self) -> PastSearchRequest:
        if sum(q is not None for q in (self.image, self.person, self.cluster)) != 1:
            raise ValueError("give exactly one of image, person and cluster")
        return self


def parse_request(payload: Any) -> PastSearchRequest:
    """A payload validated into a request, or an InvalidParameterError naming the wrong fields."""
    from facetrail.jobs.submit import describe

    if not isinstance(payload, dict):
        raise InvalidParameterError(f"a payload is a JSON object, not {type(payload).__name__}")
    try:
        return PastSearchRequest.model_validate(payload)
    except ValidationError as exc:
        raise InvalidParameterError(f"invalid search_past request: {describe(exc)}") from None


def request_image(
    settings: Settings, request: PastSearchRequest, *, local: bool
) -> LoadedImage | None:
    """The request's image, opened (``local=False``: local files only under the image roots,
    as for other apps' jobs); None for a search by person."""
    if request.image is None:
        return None
    if isinstance(request.image, UploadedImage):
        return open_bytes(settings, request.image.data, source=request.image.name or "<upload>")
    return open_image(settings, request.image, local=local)


def run_request(
    session: Session,
    settings: Settings,
    request: PastSearchRequest,
    image: LoadedImage | None = None,
) -> dict[str, Any]:
    """Answer a request (``image``: the request's image, already opened), audited."""
    if request.actor:
        settings = settings.with_(actor=request.actor)
    collection = get_collection(session, request.collection)
    backend = recognizer(settings, collection)
    query: dict[str, Any]
    if request.person is not None:
        queries = person_query(session, collection, backend, request.person)
        query = {"person": request.person, "faces": len(queries)}
    elif request.cluster is not None:
        from facetrail.services import unknowns  # it logs its erasures here

        label, queries = unknowns.cluster_embeddings(session, collection, request.cluster)
        query = {"cluster": label, "faces": len(queries)}
    else:
        assert image is not None
        queries = image_query(backend, collection.backend_collection_id, image)
        query = {"image": image.source, "image_sha256": image.sha256}
    result = search(
        session,
        settings,
        collection,
        backend,
        queries,
        threshold=request.threshold,
        limit=request.limit,
    )
    audit.record(
        session,
        settings,
        "search_past",
        collection,
        **query,
        threshold=result["threshold"],
        matches=len(result["matches"]),
    )
    return {"query": query, **result}
