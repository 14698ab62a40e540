"""Unknown faces: what identify jobs left unnamed, clustered per collection into people with
stable ids (``unknown-42``), shown as contact sheets, named, merged, split and erased.

When an identify job finishes, :func:`cluster_job` records each of its unnamed faces once, as an
``UnknownFace`` pointing at its result; faces the detector was unsure of, too small or too
blurry (the ``unknown_min_*`` settings) are recorded as kept out, with the reason. The others are
placed by :func:`facetrail.clustering.plan`: into the existing cluster they are like, into a new
cluster with faces like them from the pool, or back into the pool to wait; then each existing
cluster that grew is split where its faces, all looked at at once, are more than one person
(unless a user merged, split or named it: ``curated_at``). A re-run's faces are
copies of its original's and are not clustered again; when a re-run names a face, its unknown
face leaves its cluster (:func:`cluster_job` on a re-run).

Naming a cluster enrolls its faces as the person through an ordinary enrollment job, one item per
face: a crop of the photo around the face, kept in the image store (so that a re-index and an
erasure find it as they find any enrollment photo). When that job finishes, :func:`finish_naming`
re-runs the identify jobs whose photos hold the faces, and their change reports say what got
named. Every change is an audit event; merges and splits the clustering makes itself are too.

Every function here takes the collection's row lock first (``FOR NO KEY UPDATE``: enrollments'
version bumps wait, new jobs and results do not), so two clusterings of one collection never
interleave and locks are always taken in one order.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facetrail import clustering
from facetrail.backends import backend_for
from facetrail.backends.base import BoundingBox
from facetrail.backends.local.vectors import from_blob, to_blob
from facetrail.contact_sheet import SHEET_MARGIN, Tile, draw_sheet, face_crop
from facetrail.errors import FacetrailError, InvalidParameterError, NotFoundError
from facetrail.images import LoadedImage, open_image
from facetrail.images import upload as store_upload
from facetrail.images.store import image_store
from facetrail.jobs.base import TRUSTED_PATHS
from facetrail.models import (
    ClusterStatus,
    Collection,
    FaceResult,
    Image,
    ItemStatus,
    Job,
    JobItem,
    JobKind,
    JobStatus,
    Person,
    UnknownCluster,
    UnknownFace,
    UnknownFaceStatus,
    cluster_label,
)
from facetrail.models.base import utcnow
from facetrail.services import audit, corrections, past
from facetrail.services.records import get_collection
from facetrail.settings import Settings
from facetrail.vectors import normalise

log = logging.getLogger(__name__)

FINISHED = (JobStatus.SUCCEEDED, JobStatus.PARTIAL, JobStatus.FAILED)
# A re-run's face is an original's face when their boxes overlap this much (as rerun reports).
SAME_FACE_IOU = 0.5
# Faces drawn on one contact sheet (the newest); the title says how many there are.
SHEET_LIMIT = 60
REF = re.compile(r"(?:unknown-)?(\d{1,18})")


# References, locks, settings -------------------------------------------------------------------
def cluster_id(ref: str | int) -> int:
    """``unknown-42``, ``42`` or 42 -> 42."""
    match = REF.fullmatch(str(ref).strip().lower())
    if match is None:
        raise InvalidParameterError(f"{ref!r} is not a cluster: use unknown-N")
    return int(match.group(1))


def lock_collection(session: Session, collection_id: int) -> Collection:
    """The collection's row, locked until commit: one clustering change at a time."""
    return session.execute(
        select(Collection).where(Collection.id == collection_id).with_for_update(key_share=True)
    ).scalar_one()


def _cluster(session: Session, collection: Collection, ref: str | int) -> UnknownCluster:
    cid = cluster_id(ref)
    row = session.get(UnknownCluster, cid)
    if row is None or row.collection_id != collection.id:
        raise NotFoundError(f"no cluster {cluster_label(cid)} in collection {collection.name!r}")
    return row


def _open(cluster: UnknownCluster) -> UnknownCluster:
    """``cluster`` if its faces may still change hands; else why not."""
    if cluster.status == ClusterStatus.OPEN:
        return cluster
    if cluster.status == ClusterStatus.MERGED and cluster.merged_into_id is not None:
        raise InvalidParameterError(
            f"{cluster.label} was merged into {cluster_label(cluster.merged_into_id)}"
        )
    if cluster.status in (ClusterStatus.NAMING, ClusterStatus.NAMED):
        raise InvalidParameterError(
            f"{cluster.label} is {cluster.status.value} as {cluster.person_external_id!r}"
        )
    raise InvalidParameterError(f"{cluster.label} is {cluster.status.value}")


def params_of(settings: Settings) -> clustering.Params:
    return clustering.Params(
        link=settings.unknown_link,
        join=settings.unknown_join,
        min_size=settings.unknown_min_cluster_size,
        gap=settings.unknown_split_gap,
    )


def _similarity(settings: Settings, collection: Collection) -> clustering.Similarity | None:
    """The collection's backend's cosine -> similarity curve; None where it has none."""
    backend = backend_for(settings, collection.backend, dict(collection.backend_options))
    if not backend.scores_templates:
        return None

    def similarity(cosines: np.ndarray) -> np.ndarray:
        scores = backend.template_similarity(cosines)
        assert scores is not None
        return scores

    return similarity


def _model(settings: Settings, collection: Collection) -> str:
    return backend_for(settings, collection.backend, dict(collection.backend_options)).model_version


# Quality ---------------------------------------------------------------------------------------
def kept_out(settings: Settings, face: FaceResult, image: Image | None, model: str) -> str | None:
    """Why an unnamed face is not to be clustered, or None: its embedding is missing or from
    another model, the detector was unsure, the face is small or blurry."""
    if face.embedding is None:
        return "no_embedding"
    if face.model_version != model:
        return "other_model"
    if face.confidence < settings.unknown_min_confidence:
        return "unsure"
    if image is not None:
        side = min(face.box_width * image.width, face.box_height * image.height)
        if side < settings.unknown_min_face_size:
            return "small"
    if face.sharpness is not None and face.sharpness < settings.unknown_min_sharpness:
        return "blurry"
    return None


# Clustering ------------------------------------------------------------------------------------
def cluster_job(session: Session, settings: Settings, job_id: int) -> dict[str, Any]:
    """After an identify job finished: cluster its unknown faces; for a re-run, take the faces
    it named out of clusters. Idempotent: a face is considered once, a named face stays named.
    (Only this job's faces are read, whatever the collection's size; jobs whose clustering was
    lost are caught up by :func:`cluster_collection`.)"""
    job = session.get(Job, job_id)
    if job is None or job.kind != JobKind.IDENTIFY or job.collection_id is None:
        return {"job_id": job_id, "skipped": "not an identify job"}
    if job.status not in FINISHED:
        return {"job_id": job_id, "skipped": "not finished"}
    collection = lock_collection(session, job.collection_id)
    if job.rerun_of_id is not None:
        return _apply_rerun(session, settings, collection, job)
    return _cluster_new(session, settings, collection, job_id=job.id, only=[job.id])


def cluster_collection(
    session: Session, settings: Settings, collection_name: str, *, jobs: Sequence[int] = ()
) -> dict[str, Any]:
    """Cluster every unknown face of the collection's finished identify jobs not yet considered
    (after clustering tasks were lost, or for jobs that ran before this existed); ``jobs``:
    only those jobs' faces (``bench.unknowns`` replays jobs in order)."""
    collection = lock_collection(session, get_collection(session, collection_name).id)
    return _cluster_new(session, settings, collection, job_id=None, only=jobs)


def _cluster_new(
    session: Session,
    settings: Settings,
    collection: Collection,
    *,
    job_id: int | None,
    only: Sequence[int] = (),
) -> dict[str, Any]:
    query = (
        select(FaceResult, Image)
        .join(JobItem, FaceResult.job_item_id == JobItem.id)
        .join(Job, JobItem.job_id == Job.id)
        .outerjoin(Image, JobItem.image_id == Image.id)
        .outerjoin(UnknownFace, UnknownFace.face_result_id == FaceResult.id)
        .where(
            Job.collection_id == collection.id,
            Job.kind == JobKind.IDENTIFY,
            Job.rerun_of_id.is_(None),
            Job.status.in_(FINISHED),
            JobItem.status == ItemStatus.SUCCEEDED,
            FaceResult.person_external_id.is_(None),
            UnknownFace.id.is_(None),
        )
        .order_by(FaceResult.id)
    )
    if only:
        query = query.where(Job.id.in_(list(only)))
    similarity = _similarity(settings, collection)
    if similarity is None:
        # A backend that keeps no embeddings (Rekognition): nothing to cluster, nothing recorded.
        return {"collection": collection.name, "skipped": "the backend compares no embeddings"}
    rows = session.execute(query).all()
    model = _model(settings, collection)
    excluded: Counter[str] = Counter()
    for face, image in rows:
        reason = kept_out(settings, face, image, model)
        if reason is not None:
            excluded[reason] += 1
        session.add(
            UnknownFace(
                collection_id=collection.id,
                face_result_id=face.id,
                status=UnknownFaceStatus.EXCLUDED if reason else UnknownFaceStatus.POOL,
                reason=reason,
                model_version=face.model_version or "",
            )
        )
    session.flush()
    summary: dict[str, Any] = {"faces": len(rows), "kept_out": dict(sorted(excluded.items()))}
    if not rows:
        return {"collection": collection.name, **summary}  # nothing new: nothing moves
    summary.update(_recluster(session, settings, collection, model, similarity))
    audit.record(session, settings, "unknowns_cluster", collection, job_id=job_id, **summary)
    return {"collection": collection.name, **summary}


def _embeddings(session: Session, query: Any) -> dict[int, np.ndarray]:
    """unknown face id -> embedding, for a select of (UnknownFace.id, FaceResult.embedding)."""
    return {
        face_id: from_blob(blob)
        for face_id, blob in session.execute(query).tuples()
        if blob is not None
    }


def _members_query(cluster_ids: Iterable[int]) -> Any:
    return (
        select(UnknownFace.id, FaceResult.embedding)
        .join(FaceResult, UnknownFace.face_result_id == FaceResult.id)
        .where(
            UnknownFace.cluster_id.in_(list(cluster_ids)),
            UnknownFace.status == UnknownFaceStatus.CLUSTERED,
        )
        .order_by(UnknownFace.id)
    )


class _Members(Mapping[int, np.ndarray]):
    """Open clusters' members' embeddings, read from the database as the plan asks for them."""

    def __init__(self, session: Session, ids: Sequence[int]) -> None:
        self.session = session
        self.ids = list(ids)

    def __getitem__(self, cluster: int) -> np.ndarray:
        found = list(_embeddings(self.session, _members_query([cluster])).values())
        return np.stack(found) if found else np.zeros((0, 0), np.float32)

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)


def _recluster(
    session: Session,
    settings: Settings,
    collection: Collection,
    model: str,
    similarity: clustering.Similarity,
) -> dict[str, Any]:
    """Place the pool's faces (the newest ``POOL_LIMIT``) among the open clusters."""
    pool = _embeddings(
        session,
        select(UnknownFace.id, FaceResult.embedding)
        .join(FaceResult, UnknownFace.face_result_id == FaceResult.id)
        .where(
            UnknownFace.collection_id == collection.id,
            UnknownFace.model_version == model,
            UnknownFace.status == UnknownFaceStatus.POOL,
        )
        .order_by(UnknownFace.id.desc())
        .limit(clustering.POOL_LIMIT),
    )
    centroids: dict[int, np.ndarray] = {}
    curated: set[int] = set()
    for cid, blob, curated_at in session.execute(
        select(UnknownCluster.id, UnknownCluster.centroid, UnknownCluster.curated_at).where(
            UnknownCluster.collection_id == collection.id,
            UnknownCluster.model_version == model,
            UnknownCluster.status == ClusterStatus.OPEN,
            UnknownCluster.centroid.is_not(None),
        )
    ).tuples():
        if blob is not None:
            centroids[cid] = from_blob(blob)
            if curated_at is not None:
                curated.add(cid)
    decided = clustering.plan(
        pool,
        _Members(session, sorted(centroids)),
        similarity,
        params_of(settings),
        centroids=centroids,
        curated=curated,
    )
    touched: set[int] = set()
    merged: list[dict[str, Any]] = []
    for source, target in decided.merges:
        moved = _move_members(session, source, target)
        gone = session.get_one(UnknownCluster, source)
        kept = session.get_one(UnknownCluster, target)
        # A user's merge or split inside the source stays whole in the target (the plan
        # never merges two curated clusters).
        if kept.curated_at is None:
            kept.curated_at = gone.curated_at
        _retire(gone, ClusterStatus.MERGED, into=target)
        _drop_sheets(settings, collection, [gone])  # they showed faces it no longer holds
        touched.add(target)
        merged.append({"source": cluster_label(source), "target": cluster_label(target)})
        audit.record(
            session,
            settings,
            "unknowns_merge",
            collection,
            source=cluster_label(source),
            target=cluster_label(target),
            faces=moved,
            automatic=True,
        )
    faces = {f.id: f for f in session.scalars(select(UnknownFace).where(UnknownFace.id.in_(pool)))}
    for face_id, target in decided.joins.items():
        _place(faces[face_id], target)
        touched.add(target)
    created: list[str] = []
    for group in decided.groups:
        cluster = UnknownCluster(
            collection_id=collection.id, model_version=model, status=ClusterStatus.OPEN
        )
        session.add(cluster)
        session.flush()
        for face_id in group:
            _place(faces[face_id], cluster.id)
        touched.add(cluster.id)
        created.append(cluster.label)
    session.flush()
    refresh(session, touched)
    grown = {*decided.joins.values(), *(target for _, target in decided.merges)}
    split = _split_grown(session, settings, collection, grown, similarity)
    return {
        "joined": len(decided.joins),
        "new_clusters": created,
        "merged": merged,
        "split": split,
        "pooled": len(pool) - len(decided.joins) - sum(map(len, decided.groups)),
    }


def _split_grown(
    session: Session,
    settings: Settings,
    collection: Collection,
    grown: Iterable[int],
    similarity: clustering.Similarity,
) -> list[dict[str, Any]]:
    """Existing clusters that grew in this pass, re-checked as a user's ``split`` without faces
    does (``unknown_auto_split``): where average linkage of all their faces finds more than one
    person (:func:`facetrail.clustering.split_parts`: parts less alike than the join similarity,
    or by ``unknown_split_gap`` than their own faces), the largest part keeps the id and the
    others leave.
    Clusters a user merged, split or named (``curated_at``) are left as they are. New clusters
    are not re-checked: the pool's linkage has just made them."""
    if not settings.unknown_auto_split:
        return []
    done = []
    for cluster in session.scalars(
        select(UnknownCluster)
        .where(
            UnknownCluster.id.in_(sorted(set(grown))),
            UnknownCluster.status == ClusterStatus.OPEN,
            UnknownCluster.curated_at.is_(None),
            UnknownCluster.size.between(2, clustering.SPLIT_LIMIT),
        )
        .order_by(UnknownCluster.id)
    ).all():
        members = _embeddings(session, _members_query([cluster.id]))
        if len(members) < 2:
            continue
        leaving = _leaving(settings, members, similarity)
        if not leaving:
            continue
        result = _split_off(session, settings, collection, cluster, leaving, automatic=True)
        done.append({k: result[k] for k in ("cluster", "into", "pooled")})
    return done


def _place(face: UnknownFace, cluster: int) -> None:
    face.cluster_id = cluster
    face.status = UnknownFaceStatus.CLUSTERED


def _move_members(session: Session, source: int, target: int) -> int:
    moved = 0
    for face in session.scalars(
        select(UnknownFace).where(
            UnknownFace.cluster_id == source, UnknownFace.status == UnknownFaceStatus.CLUSTERED
        )
    ):
        face.cluster_id = target
        moved += 1
    session.flush()
    return moved


def _retire(cluster: UnknownCluster, status: ClusterStatus, *, into: int | None = None) -> None:
    cluster.status = status
    cluster.merged_into_id = into
    cluster.size = 0
    cluster.centroid = None


def refresh(session: Session, cluster_ids: Iterable[int]) -> None:
    """Recount the clusters' faces and recompute their centroids from them (a cluster left
    with no faces keeps no centroid)."""
    ids = sorted(set(cluster_ids))
    if not ids:
        return
    members: dict[int, list[np.ndarray]] = {}
    query = (
        select(UnknownFace.cluster_id, FaceResult.embedding)
        .join(FaceResult, UnknownFace.face_result_id == FaceResult.id)
        .where(
            UnknownFace.cluster_id.in_(ids),
            UnknownFace.status.in_([UnknownFaceStatus.CLUSTERED, UnknownFaceStatus.NAMED]),
        )
    )
    for cid, blob in session.execute(query).tuples():
        if cid is not None and blob is not None:
            members.setdefault(cid, []).append(from_blob(blob))
    for cluster in session.scalars(select(UnknownCluster).where(UnknownCluster.id.in_(ids))):
        vectors = members.get(cluster.id, [])
        cluster.size = len(vectors)
        cluster.centroid = to_blob(normalise(np.mean(vectors, axis=0))[0]) if vectors else None


def _apply_rerun(
    session: Session, settings: Settings, collection: Collection, job: Job
) -> dict[str, Any]:
    """Faces a re-run named are not unknown any more: they leave the pool and open clusters."""
    root = job
    while root.rerun_of_id is not None:
        parent = session.get(Job, root.rerun_of_id)
        if parent is None:
            return {"job_id": job.id, "skipped": "its original job was deleted"}
        root = parent
    boxes_named: dict[int, list[BoundingBox]] = {}
    named_faces = (
        select(
            JobItem.position,
            FaceResult.box_left,
            FaceResult.box_top,
            FaceResult.box_width,
            FaceResult.box_height,
        )
        .join(FaceResult, FaceResult.job_item_id == JobItem.id)
        .where(JobItem.job_id == job.id, JobItem.status == ItemStatus.SUCCEEDED)
        .where(FaceResult.person_external_id.is_not(None))
    )
    for position, *box in session.execute(named_faces).tuples():
        boxes_named.setdefault(position, []).append(BoundingBox(*box))
    originals = [
        face.id
        for face, position in session.execute(
            select(FaceResult, JobItem.position)
            .join(JobItem, FaceResult.job_item_id == JobItem.id)
            .where(JobItem.job_id == root.id, JobItem.position.in_(list(boxes_named)))
        ).tuples()
        if any(_box(face).iou(other) >= SAME_FACE_IOU for other in boxes_named[position])
    ]
    named, left = _leave(session, originals)
    if named:
        audit.record(
            session, settings, "unknowns_named_by_rerun", collection, job_id=job.id,
            rerun_of=root.id, faces=named, clusters=left,
        )  # fmt: skip
    return {"job_id": job.id, "rerun_of": root.id, "named": named, "left": left}


def faces_named(
    session: Session,
    settings: Settings,
    collection: Collection,
    face_result_ids: Sequence[int],
    *,
    reason: str,
) -> int:
    """Results that are named now (a correction said whose they are): their unknown faces leave
    the pool and open clusters. Returns how many did."""
    lock_collection(session, collection.id)
    named, left = _leave(session, face_result_ids)
    if named:
        audit.record(
            session, settings, f"unknowns_named_by_{reason}", collection, faces=named,
            clusters=left,
        )  # fmt: skip
    return named


def _leave(session: Session, face_result_ids: Sequence[int]) -> tuple[int, list[str]]:
    """Unknown faces of these results that wait in the pool or an open cluster are named now:
    they leave it (the clusters are recounted). Returns how many, and the clusters left."""
    if not face_result_ids:
        return 0, []
    faces = session.scalars(
        select(UnknownFace).where(
            UnknownFace.face_result_id.in_(list(face_result_ids)),
            UnknownFace.status.in_([UnknownFaceStatus.POOL, UnknownFaceStatus.CLUSTERED]),
        )
    ).all()
    touched: set[int] = set()
    for unknown in faces:
        cluster = session.get(UnknownCluster, unknown.cluster_id) if unknown.cluster_id else None
        if cluster is not None and cluster.status == ClusterStatus.OPEN:
            touched.add(cluster.id)
            unknown.cluster_id = None
        unknown.status = UnknownFaceStatus.NAMED
    session.flush()
    refresh(session, touched)
    return len(faces), sorted(cluster_label(c) for c in touched)


def _box(face: FaceResult) -> BoundingBox:
    return BoundingBox(face.box_left, face.box_top, face.box_width, face.box_height)


# Reading ---------------------------------------------------------------------------------------
def list_clusters(
    session: Session, collection_name: str, *, everything: bool = False
) -> dict[str, Any]:
    """The collection's clusters, largest first (``everything``: also merged, erased and empty
    ones), and what waits in the pool or was kept out."""
    collection = get_collection(session, collection_name)
    query = select(UnknownCluster).where(UnknownCluster.collection_id == collection.id)
    if not everything:
        query = query.where(
            UnknownCluster.status.in_(
                [ClusterStatus.OPEN, ClusterStatus.NAMING, ClusterStatus.NAMED]
            ),
            UnknownCluster.size > 0,
        )
    clusters = list(session.scalars(query))
    seen = _seen(session, [c.id for c in clusters])
    statuses = Counter(
        {
            (status, reason): n
            for status, reason, n in session.execute(
                select(UnknownFace.status, UnknownFace.reason, func.count())
                .where(UnknownFace.collection_id == collection.id)
                .group_by(UnknownFace.status, UnknownFace.reason)
            ).tuples()
        }
    )
    return {
        "collection": collection.name,
        "clusters": [
            _cluster_dict(c, *seen.get(c.id, (0, None, None)))
            for c in sorted(clusters, key=lambda c: (-c.size, c.id))
        ],
        "pool": sum(n for (s, _), n in statuses.items() if s == UnknownFaceStatus.POOL),
        "kept_out": {
            r or "": n for (s, r), n in sorted(statuses.items()) if s == UnknownFaceStatus.EXCLUDED
        },
    }


def _seen(session: Session, ids: list[int]) -> dict[int, tuple[int, Any, Any]]:
    """cluster -> (jobs its faces come from, first and last time one was identified)."""
    if not ids:
        return {}
    rows = session.execute(
        select(
            UnknownFace.cluster_id,
            func.count(func.distinct(Job.id)),
            func.min(Job.created_at),
            func.max(Job.created_at),
        )
        .join(FaceResult, UnknownFace.face_result_id == FaceResult.id)
        .join(JobItem, FaceResult.job_item_id == JobItem.id)
        .join(Job, JobItem.job_id == Job.id)
        .where(UnknownFace.cluster_id.in_(ids))
        .group_by(UnknownFace.cluster_id)
    ).tuples()
    return {cid: (jobs, first, last) for cid, jobs, first, last in rows if cid is not None}


def _cluster_dict(cluster: UnknownCluster, jobs: int, first: Any, last: Any) -> dict[str, Any]:
    return {
        "cluster": cluster.label,
        "status": cluster.status.value,
        "faces": cluster.size,
        "jobs": jobs,
        "person": cluster.person_external_id,
        "first_seen": _iso(first),
        "last_seen": _iso(last),
        "merged_into": cluster_label(cluster.merged_into_id) if cluster.merged_into_id else None,
        "split_from": cluster_label(cluster.split_from_id) if cluster.split_from_id else None,
        "curated_at": _iso(cluster.curated_at),
        "name_job": cluster.name_job_id,
        "model_version": cluster.model_version,
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def show(session: Session, collection_name: str, ref: str | int) -> dict[str, Any]:
    """One cluster and its faces, newest first: face number, job, image, box, when."""
    collection = get_collection(session, collection_name)
    cluster = _cluster(session, collection, ref)
    rows = session.execute(
        select(UnknownFace, FaceResult, JobItem, Job)
        .join(FaceResult, UnknownFace.face_result_id == FaceResult.id)
        .join(JobItem, FaceResult.job_item_id == JobItem.id)
        .join(Job, JobItem.job_id == Job.id)
        .where(UnknownFace.cluster_id == cluster.id)
        .order_by(UnknownFace.id.desc())
    ).all()
    seen = _seen(session, [cluster.id]).get(cluster.id, (0, None, None))
    return {
        **_cluster_dict(cluster, *seen),
        "collection": collection.name,
        "members": [
            {
                "face": unknown.id,
                "face_result_id": face.id,
                "status": unknown.status.value,
                "job_id": job.id,
                "image": item.source,
                "position": item.position,
                "box": {k: round(v, 4) for k, v in _box(face).as_dict().items()},
                "confidence": round(face.confidence, 2),
                "sharpness": None if face.sharpness is None else round(face.sharpness, 1),
                "identified_at": _iso(job.created_at),
                TRUSTED_PATHS: bool((job.parameters or {}).get(TRUSTED_PATHS)),
            }
            for unknown, face, item, job in rows
        ],
    }


def remember_sheet(
    session: Session, settings: Settings, collection_name: str, ref: str | int, source: str
) -> None:
    """Record the contact sheet a task drew into the image store, for erasure to find; the
    one it replaces goes."""
    from facetrail.images.store import upload_key

    collection = get_collection(session, collection_name)
    cluster = _cluster(session, collection, ref)
    key = upload_key(source)
    if cluster.sheet_sha256 and cluster.sheet_sha256 != key:
        image_store(settings).delete(cluster.sheet_sha256)
    cluster.sheet_sha256 = key


def cluster_embeddings(
    session: Session, collection: Collection, ref: str | int
) -> tuple[str, np.ndarray]:
    """A cluster's label and its faces' embeddings (n, dim), to search the past with."""
    cluster = _cluster(session, collection, ref)
    found = list(
        _embeddings(
            session,
            select(UnknownFace.id, FaceResult.embedding)
            .join(FaceResult, UnknownFace.face_result_id == FaceResult.id)
            .where(
                UnknownFace.cluster_id == cluster.id,
                UnknownFace.status.in_([UnknownFaceStatus.CLUSTERED, UnknownFaceStatus.NAMED]),
            ),
        ).values()
    )
    if not found:
        raise InvalidParameterError(f"{cluster.label} has no faces to search with")
    return cluster.label, np.stack(found)


def sheet_path(settings: Settings, collection_name: str, cid: int) -> Path:
    """Where ``show`` writes a cluster's contact sheet unless told otherwise (erasure deletes
    it there)."""
    return settings.home / "unknowns" / collection_name / f"{cluster_label(cid)}.jpg"


def contact_sheet(settings: Settings, shown: dict[str, Any]) -> Any:
    """The contact sheet of a cluster as :func:`show` returned it (a Pillow image): its newest
    ``SHEET_LIMIT`` faces, each read from its photo through the image opener."""
    faces = shown["members"][:SHEET_LIMIT]
    photos: dict[str, Any] = {}
    tiles = []
    for face in faces:
        source = face["image"]
        if source not in photos:
            try:
                photos[source] = open_image(settings, source, local=face[TRUSTED_PATHS]).pixels
            except FacetrailError as exc:
                log.warning("contact sheet: %s", exc.message)
                photos[source] = None
        pixels = photos[source]
        box = BoundingBox(**face["box"])
        crop = None if pixels is None else face_crop(pixels, box, SHEET_MARGIN)
        date = (face["identified_at"] or "")[:10]
        tiles.append(
            Tile(
                crop,
                (f"#{face['face']} job {face['job_id']} {date}", Path(source).name or source),
            )
        )
    total = len(shown["members"])
    title = f"{shown['cluster']} in {shown['collection']}: {total} faces"
    if shown.get("person"):
        title += f", named {shown['person']}"
    if total > len(faces):
        title += f" (the newest {len(faces)} shown)"
    return draw_sheet(title, tiles)


# Changes ---------------------------------------------------------------------------------------
def merge(
    session: Session, settings: Settings, collection_name: str, source: str | int, target: str | int
) -> dict[str, Any]:
    """Fold cluster ``source`` into ``target``: one person, the target's id. The target is
    curated after: no automatic split takes the two apart again."""
    collection = lock_collection(session, get_collection(session, collection_name).id)
    src = _open(_cluster(session, collection, source))
    dst = _open(_cluster(session, collection, target))
    if src.id == dst.id:
        raise InvalidParameterError("cannot merge a cluster into itself")
    if src.model_version != dst.model_version:
        raise InvalidParameterError(f"{src.label} and {dst.label} come from different models")
    moved = _move_members(session, src.id, dst.id)
    _retire(src, ClusterStatus.MERGED, into=dst.id)
    _curate([src, dst])
    refresh(session, [dst.id])
    _drop_sheets(settings, collection, [src])
    audit.record(
        session,
        settings,
        "unknowns_merge",
        collection,
        source=src.label,
        target=dst.label,
        faces=moved,
    )
    return {"merged": src.label, "into": dst.label, "faces_moved": moved, "faces": dst.size}


def split(
    session: Session,
    settings: Settings,
    collection_name: str,
    ref: str | int,
    faces: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Take faces out of a cluster into a new one: the ``faces`` named (numbers from ``show``),
    or, with none named, every part that average linkage of its faces tells apart by the
    automatic split's rule (:func:`facetrail.clustering.split_parts`: a cluster grows by joins
    taken one at a time; this looks at all its faces at once): the largest keeps the id, parts
    of fewer than the minimum cluster size go back to the pool. The clusters are curated
    after: no automatic split or merge undoes what a user decided."""
    collection = lock_collection(session, get_collection(session, collection_name).id)
    cluster = _open(_cluster(session, collection, ref))
    members = _embeddings(session, _members_query([cluster.id]))
    ids = sorted(members)
    if faces:
        wanted = sorted(set(faces))
        strangers = [f for f in wanted if f not in members]
        if strangers:
            raise InvalidParameterError(
                f"faces {', '.join(map(str, strangers))} are not in {cluster.label}"
            )
        if len(wanted) == len(ids):
            raise InvalidParameterError(f"that is all of {cluster.label}; nothing to split off")
        return _split_off(session, settings, collection, cluster, [wanted], chosen=True)
    similarity = _similarity(settings, collection)
    if similarity is None or len(ids) < 2:
        raise InvalidParameterError(f"{cluster.label} cannot be split automatically")
    leaving = _leaving(settings, members, similarity)
    return _split_off(session, settings, collection, cluster, leaving)


def _leaving(
    settings: Settings, members: Mapping[int, np.ndarray], similarity: clustering.Similarity
) -> list[list[int]]:
    """The unknown face ids of each part that leaves a cluster whose faces are ``members``
    (:func:`facetrail.clustering.split_parts`; the largest part stays); none: one person."""
    ids = sorted(members)
    vectors = np.stack([members[i] for i in ids])
    parts = clustering.split_parts(similarity, vectors, params_of(settings))
    return [[ids[row] for row in part] for part in parts[1:]]


def _split_off(
    session: Session,
    settings: Settings,
    collection: Collection,
    cluster: UnknownCluster,
    parts: Sequence[Sequence[int]],
    *,
    chosen: bool = False,
    automatic: bool = False,
) -> dict[str, Any]:
    """Move each of ``parts`` (unknown face ids of ``cluster``) into a new cluster split from
    it, or back into the pool if smaller than the minimum cluster size (unless ``chosen``: the
    faces a user named make a cluster whatever their number). One audit event; a user's split
    (not ``automatic``) marks the clusters curated."""
    minimum = 1 if chosen else settings.unknown_min_cluster_size
    groups = [p for p in parts if len(p) >= minimum]
    pooled = [f for p in parts if len(p) < minimum for f in p]
    rows = {
        f.id: f
        for f in session.scalars(
            select(UnknownFace).where(UnknownFace.id.in_([f for p in parts for f in p]))
        )
    }
    created: list[UnknownCluster] = []
    for group in groups:
        new = UnknownCluster(
            collection_id=collection.id,
            model_version=cluster.model_version,
            status=ClusterStatus.OPEN,
            split_from_id=cluster.id,
        )
        session.add(new)
        session.flush()
        for face_id in group:
            rows[face_id].cluster_id = new.id
        created.append(new)
    for face_id in pooled:
        rows[face_id].cluster_id = None
        rows[face_id].status = UnknownFaceStatus.POOL
    session.flush()
    refresh(session, [cluster.id, *(c.id for c in created)])
    _drop_sheets(settings, collection, [cluster])
    if not automatic:
        _curate([cluster, *created])
    result = {
        "cluster": cluster.label,
        "faces": cluster.size,
        "into": [{"cluster": c.label, "faces": c.size} for c in created],
        "pooled": len(pooled),
    }
    if created or pooled:
        extra = {"automatic": True} if automatic else {"chosen": chosen}
        audit.record(
            session,
            settings,
            "unknowns_split",
            collection,
            cluster=cluster.label,
            into=[c.label for c in created],
            faces=sum(c.size for c in created),
            pooled=len(pooled),
            **extra,
        )
    return result


def _curate(clusters: Iterable[UnknownCluster]) -> None:
    """A user merged, split or named these clusters (who: the audit event beside it)."""
    now = utcnow()
    for cluster in clusters:
        cluster.curated_at = now


# Naming ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NamingFace:
    """A clustered face to enroll: where its photo is, how it may be read, where the face is,
    and where the photo's other faces are (greyed out in its crop)."""

    face: int
    source: str
    trusted: bool
    box: BoundingBox
    others: tuple[BoundingBox, ...]


@dataclass(frozen=True)
class Crop:
    """A cluster face cut out of its photo for enrollment: ``source`` is ``upload://...``."""

    face: int
    source: str


def naming_faces(
    session: Session, collection_name: str, ref: str | int, person: str
) -> tuple[list[NamingFace], list[dict[str, Any]]]:
    """The faces of a cluster that naming it would enroll as ``person``, and those it will not:
    a face a correction says is not ``person`` (services/corrections.py) stays out."""
    collection = get_collection(session, collection_name)
    cluster = _open(_cluster(session, collection, ref))
    rows = session.execute(
        select(UnknownFace.id, FaceResult, JobItem, Job)
        .join(FaceResult, UnknownFace.face_result_id == FaceResult.id)
        .join(JobItem, FaceResult.job_item_id == JobItem.id)
        .join(Job, JobItem.job_id == Job.id)
        .where(
            UnknownFace.cluster_id == cluster.id,
            UnknownFace.status == UnknownFaceStatus.CLUSTERED,
        )
        .order_by(UnknownFace.id)
    ).all()
    faces: list[NamingFace] = []
    refused: list[dict[str, Any]] = []
    for face_id, result, item, job in rows:
        others = tuple(_box(f) for f in item.faces if f.id != result.id)
        rules = corrections.rules_for(session, collection, item.image_id, [_box(result)])
        if rules and rules[0] is not None and person in rules[0].not_people:
            refused.append(
                {"face": face_id, "image": item.source, "error": f"corrected: not {person}"}
            )
            continue
        trusted = bool((job.parameters or {}).get(TRUSTED_PATHS))
        faces.append(NamingFace(face_id, item.source, trusted, _box(result), others))
    return faces, refused


def naming_crops(
    settings: Settings, faces: Sequence[NamingFace]
) -> tuple[list[Crop], list[dict[str, Any]]]:
    """Each face cut out of its photo as a correction's enrollment cuts it (context for the
    detector, the photo's other faces greyed out: ``corrections.face_crop``) and kept in the
    image store; and the faces whose photo could not be read, with the reason. Photos are read
    as their jobs allowed (``trusted_paths``)."""
    crops: list[Crop] = []
    unreadable: list[dict[str, Any]] = []
    photos: dict[str, LoadedImage] = {}
    for face in faces:
        try:
            if face.source not in photos:
                photos[face.source] = open_image(settings, face.source, local=face.trusted)
            crop = corrections.face_crop(photos[face.source], face.box, face.others)
            crops.append(Crop(face.face, store_upload(settings, crop)))
        except FacetrailError as exc:
            if exc.retryable:
                raise
            unreadable.append({"face": face.face, "image": face.source, "error": exc.message})
    return crops, unreadable


def start_naming(
    session: Session,
    settings: Settings,
    collection_name: str,
    ref: str | int,
    person: str,
    crops: Sequence[Crop],
    left_out: Sequence[dict[str, Any]] = (),
) -> Job:
    """Create the enrollment job that names a cluster (its items are ``crops``, from
    :func:`naming_crops`); the caller commits, then starts it. When it finishes,
    :func:`finish_naming` re-runs the jobs the faces came from."""
    from facetrail.jobs import job_type
    from facetrail.jobs.submit import parse_payload

    collection = lock_collection(session, get_collection(session, collection_name).id)
    cluster = _open(_cluster(session, collection, ref))
    clustered = set(
        session.scalars(
            select(UnknownFace.id).where(
                UnknownFace.cluster_id == cluster.id,
                UnknownFace.status == UnknownFaceStatus.CLUSTERED,
            )
        )
    )
    # Faces that left the cluster since the crops were cut are not enrolled.
    kept = [c for c in crops if c.face in clustered]
    if not kept:
        reasons = "; ".join(u["error"] for u in left_out[:3])
        raise InvalidParameterError(
            f"none of {cluster.label}'s photos could be read" + (f": {reasons}" if reasons else "")
        )
    request = parse_payload(
        {
            "kind": "enroll",
            "collection": collection.name,
            "entries": [{"image": c.source, "person": person} for c in kept],
        }
    )
    job = job_type("enroll").create(session, settings, request)
    job.parameters = {
        **job.parameters,
        "unknown_cluster": cluster.id,
        "unknown_faces": [c.face for c in kept],
        # Whoever named it also makes the re-runs, though a worker records them.
        "actor": audit.actor_of(settings),
    }
    cluster.status = ClusterStatus.NAMING
    cluster.person_external_id = person
    cluster.name_job_id = job.id
    _curate([cluster])  # should the naming fail, the cluster is open again, and stays as it is
    audit.record(
        session,
        settings,
        "unknowns_name",
        collection,
        job_id=job.id,
        cluster=cluster.label,
        person=person,
        faces=len(kept),
        left_out=len(left_out),
    )
    return job


def rerun_request_id(cluster: int, name_job: int, job: int) -> str:
    """The request id of the re-run that naming ``cluster`` (by ``name_job``) makes of ``job``:
    known in advance, so an app can wait for its report, and a second delivery makes none."""
    return f"{cluster_label(cluster)}.{name_job}.rerun.{job}"


def jobs_of(session: Session, cluster: int) -> list[int]:
    """The identify jobs (never re-runs) whose photos hold the cluster's faces."""
    return sorted(
        set(
            session.scalars(
                select(JobItem.job_id)
                .join(FaceResult, FaceResult.job_item_id == JobItem.id)
                .join(UnknownFace, UnknownFace.face_result_id == FaceResult.id)
                .where(UnknownFace.cluster_id == cluster)
            )
        )
    )


def still_naming(session: Session, job_id: int) -> bool:
    """Whether the cluster that enrollment ``job_id`` names is still waiting for it."""
    job = session.get(Job, job_id)
    cid = (job.parameters or {}).get("unknown_cluster") if job is not None else None
    cluster = session.get(UnknownCluster, cid) if isinstance(cid, int) else None
    return (
        cluster is not None
        and cluster.name_job_id == job_id
        and cluster.status == ClusterStatus.NAMING
    )


def finish_naming(session: Session, settings: Settings, job_id: int) -> list[int]:
    """After a naming enrollment job finished: the cluster is named, and the jobs its faces came
    from are re-run (returned: the caller commits, then starts them). Nothing enrolled: the
    cluster is open again. Idempotent: a second call returns the same re-runs."""
    from facetrail.jobs import job_type
    from facetrail.jobs.rerun import RerunRequest

    job = session.get(Job, job_id)
    if job is None or job.collection_id is None or job.status not in FINISHED:
        return []
    cid = (job.parameters or {}).get("unknown_cluster")
    if not isinstance(cid, int):
        return []
    collection = lock_collection(session, job.collection_id)
    cluster = session.get(UnknownCluster, cid)
    if cluster is None or cluster.name_job_id != job.id:
        return []
    actor = (job.parameters or {}).get("actor")
    if isinstance(actor, str) and actor:
        settings = settings.with_(actor=actor)
    if cluster.status != ClusterStatus.NAMING:
        return [int(r) for r in (job.parameters or {}).get("reruns", [])]
    person = cluster.person_external_id
    if job.succeeded_items == 0:
        cluster.status = ClusterStatus.OPEN
        cluster.person_external_id = None
        audit.record(
            session, settings, "unknowns_name_failed", collection, job_id=job.id,
            cluster=cluster.label, person=person,
        )  # fmt: skip
        return []
    cluster.person_id = session.scalar(
        select(Person.id).where(Person.collection_id == collection.id, Person.external_id == person)
    )
    cluster.status = ClusterStatus.NAMED
    for face in session.scalars(
        select(UnknownFace).where(
            UnknownFace.cluster_id == cluster.id, UnknownFace.status == UnknownFaceStatus.CLUSTERED
        )
    ):
        face.status = UnknownFaceStatus.NAMED
    reruns: list[int] = []
    rerun = job_type("rerun")
    for original in jobs_of(session, cluster.id):
        request_id = rerun_request_id(cluster.id, job.id, original)
        existing = session.scalar(select(Job.id).where(Job.request_id == request_id))
        if existing is None:
            made = rerun.create(session, settings, RerunRequest(job_id=original))
            made.request_id = request_id
            existing = made.id
        reruns.append(existing)
    job.parameters = {**job.parameters, "reruns": reruns}
    audit.record(
        session,
        settings,
        "unknowns_named",
        collection,
        job_id=job.id,
        cluster=cluster.label,
        person=person,
        faces=cluster.size,
        enrolled=job.succeeded_items,
        reruns=reruns,
    )
    return reruns


# Erasure ---------------------------------------------------------------------------------------
def erase(
    session: Session, settings: Settings, collection_name: str, ref: str | int
) -> dict[str, Any]:
    """Erase a cluster: its faces' embeddings (in their results and every re-run's copy) and
    their unknown-face records go, with its contact sheets; its row stays as a tombstone, so
    its id is never reused. What stays is one audit event."""
    collection = lock_collection(session, get_collection(session, collection_name).id)
    cluster = _cluster(session, collection, ref)
    if cluster.status in (ClusterStatus.ERASED, ClusterStatus.MERGED):
        raise InvalidParameterError(f"{cluster.label} is {cluster.status.value}")
    faces = list(session.scalars(select(UnknownFace).where(UnknownFace.cluster_id == cluster.id)))
    embeddings = _erase_faces(session, collection, faces)
    _drop_sheets(settings, collection, [cluster])
    _retire(cluster, ClusterStatus.ERASED)
    cluster.person_id = None
    cluster.person_external_id = None
    audit.record(
        session, settings, "unknowns_erase", collection, cluster=cluster.label, faces=len(faces),
        embeddings=embeddings,
    )  # fmt: skip
    past.forget(session, collection.id)  # this process's past faces: none of theirs kept
    return {"erased": cluster.label, "faces": len(faces), "embeddings": embeddings}


def forget_person(
    session: Session,
    settings: Settings,
    collection: Collection,
    person_id: int,
    aliases: set[str],
) -> dict[str, int]:
    """For a person's erasure (``services.people.delete``), before their results are scrubbed:
    clusters named after them are erased whole, and so are unknown faces a re-run named them
    in (the original result left them unnamed, so the scrub alone would not find it)."""
    lock_collection(session, collection.id)
    theirs = list(
        session.scalars(
            select(UnknownCluster).where(
                UnknownCluster.collection_id == collection.id,
                (UnknownCluster.person_id == person_id)
                | UnknownCluster.person_external_id.in_(sorted(aliases)),
            )
        )
    )
    faces = list(
        session.scalars(
            select(UnknownFace).where(UnknownFace.cluster_id.in_([c.id for c in theirs]))
        )
    )
    # A re-run that named them, or left the face unnamed with them first among candidates,
    # says whose it is: the original result, unnamed, does not.
    others = list(
        session.scalars(
            select(UnknownFace).where(
                UnknownFace.collection_id == collection.id,
                UnknownFace.status != UnknownFaceStatus.EXCLUDED,
                UnknownFace.id.not_in([f.id for f in faces] or [0]),
            )
        )
    )
    results = list(
        session.scalars(
            select(FaceResult).where(FaceResult.id.in_([f.face_result_id for f in others]))
        )
    )
    copies = _rerun_copies(session, results)
    for face in others:
        if any(_names(c, person_id, aliases) for c in copies.get(face.face_result_id, [])):
            faces.append(face)
    embeddings = _erase_faces(session, collection, faces)
    for cluster in theirs:
        _retire(cluster, ClusterStatus.ERASED)
        cluster.person_id = None
        cluster.person_external_id = None
    _drop_sheets(settings, collection, theirs)
    return {"unknown_clusters": len(theirs), "unknown_faces": len(faces), "embeddings": embeddings}


def drop_erased(session: Session, settings: Settings, collection: Collection) -> int:
    """After an erasure scrubbed results: unknown faces whose embedding is gone leave their
    clusters and the pool (centroids recomputed, contact sheets dropped; a cluster left with
    no face is erased). Returns how many left."""
    lock_collection(session, collection.id)
    gone = list(
        session.scalars(
            select(UnknownFace)
            .join(FaceResult, UnknownFace.face_result_id == FaceResult.id)
            .where(
                UnknownFace.collection_id == collection.id,
                UnknownFace.status != UnknownFaceStatus.EXCLUDED,
                FaceResult.embedding.is_(None),
            )
        )
    )
    touched = {f.cluster_id for f in gone if f.cluster_id is not None}
    for face in gone:
        session.delete(face)
    session.flush()
    refresh(session, touched)
    affected = list(session.scalars(select(UnknownCluster).where(UnknownCluster.id.in_(touched))))
    for cluster in affected:
        if cluster.size == 0:
            _retire(cluster, ClusterStatus.ERASED)
            cluster.person_id = None
            cluster.person_external_id = None
    _drop_sheets(settings, collection, affected)
    return len(gone)


def _erase_faces(session: Session, collection: Collection, faces: Sequence[UnknownFace]) -> int:
    """Drop unknown faces and the embeddings of their results, and of every re-run's copy of
    them (same position, overlapping box), out of the past-faces index too (logged removals).
    Returns the embeddings removed."""
    results = {
        r.id: r
        for r in session.scalars(
            select(FaceResult).where(FaceResult.id.in_([f.face_result_id for f in faces]))
        )
    }
    erased: list[int] = []
    copies = _rerun_copies(session, list(results.values()))
    for result in [*results.values(), *(c for found in copies.values() for c in found)]:
        if result.embedding is not None:
            result.embedding = None
            erased.append(result.id)
    for face in faces:
        session.delete(face)
    session.flush()
    past.log_changes(session, collection.id, [], erased)
    return len(erased)


def _names(result: FaceResult, person_id: int, aliases: set[str]) -> bool:
    """Whether a result says the face is the person's: named so, or left unnamed with them as
    its best candidate (as ``services.people`` reads results)."""
    if result.person_id == person_id or result.person_external_id in aliases:
        return True
    first = (result.candidates or [{}])[0]
    return result.person_external_id is None and first.get("person") in aliases


def _rerun_copies(session: Session, results: list[FaceResult]) -> dict[int, list[FaceResult]]:
    """For each of ``results`` (by id), the results of re-runs, at any depth, that are the
    same face: the same position of the job, the best overlapping box."""
    wanted: dict[tuple[int, int], list[FaceResult]] = {}
    for result in results:
        item = session.get_one(JobItem, result.job_item_id)
        wanted.setdefault((item.job_id, item.position), []).append(result)
    copies: dict[int, list[FaceResult]] = {r.id: [] for r in results}
    frontier = sorted({job for job, _ in wanted})
    origin = {job: job for job in frontier}
    while frontier:
        children = (
            session.execute(select(Job.id, Job.rerun_of_id).where(Job.rerun_of_id.in_(frontier)))
            .tuples()
            .all()
        )
        for child, parent in children:
            if parent is not None:
                origin[child] = origin[parent]
        frontier = [child for child, _ in children]
        for child in frontier:
            for item in session.scalars(select(JobItem).where(JobItem.job_id == child)):
                originals = wanted.get((origin[child], item.position), [])
                for face in item.faces if originals else []:
                    iou, best = max((_box(face).iou(_box(o)), o.id) for o in originals)
                    if iou >= SAME_FACE_IOU:
                        copies[best].append(face)
    return copies


def _drop_sheets(
    settings: Settings, collection: Collection, clusters: Iterable[UnknownCluster]
) -> None:
    """Contact sheets that showed these clusters' faces: the default file and the task's copy
    in the image store. A store that cannot delete fails the change (it rolls back)."""
    for cluster in clusters:
        with contextlib.suppress(FileNotFoundError):
            sheet_path(settings, collection.name, cluster.id).unlink()
        if cluster.sheet_sha256:
            image_store(settings).delete(cluster.sheet_sha256)
            cluster.sheet_sha256 = None
