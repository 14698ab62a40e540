"""Erasing a person leaves nothing of them: no embedding, crop or name in any table or file.

The person goes through everything that copies their data: enrollment (a path and uploaded
bytes), identification (named, and left unnamed as a candidate by a strict threshold), a tag
job's known-people operation, and a re-index interrupted with their faces already in its
staging index. After ``delete_person`` every column of every row of every table, and every file
under FACETRAIL_HOME, is searched for their names, embeddings and crops; the only trace left is
the documented tombstone, an audit event holding a digest of their id.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from sqlalchemy import select

from facetrail.api import Facetrail
from facetrail.backends.local.backend import LocalBackend
from facetrail.backends.local.vectors import from_blob
from facetrail.db import session_scope
from facetrail.errors import NotFoundError
from facetrail.images import open_image
from facetrail.images.store import SCHEME as UPLOAD_SCHEME
from facetrail.images.store import image_store
from facetrail.jobs import job_type
from facetrail.jobs.reindex import ReindexRequest
from facetrail.jobs.runner import Context, claim, pending_item_ids, run_item
from facetrail.migrate import upgrade
from facetrail.models import (
    AuditEvent,
    Base,
    Face,
    FaceResult,
    ItemStatus,
    JobItem,
    LocalFace,
    Person,
)
from facetrail.server.testing import serve_process
from facetrail.services import catalog, people
from facetrail.settings import Settings
from tests.conftest import DATA, KNN

SUBJECT = "subject_qx7"
DISPLAY = "subject qx7"  # the display name enrollment derives from the id
URL = f"https://example.org/{SUBJECT}"
ROSE = KNN / "train" / "rose_leslie"
GROUP = KNN / "test" / "kit_with_rose.jpg"


@dataclass
class Traces:
    """What identifies the subject: names, and the embeddings and crops made of their face."""

    names: list[str]
    embeddings: dict[int, list[np.ndarray]] = field(default_factory=dict)  # by dimension
    chunks: list[bytes] = field(default_factory=list)  # byte runs of embeddings and crops

    def add_embedding(self, blob: bytes) -> None:
        vector = from_blob(blob)
        self.embeddings.setdefault(len(vector), []).append(vector / np.linalg.norm(vector))
        # 32-byte runs: a database page may split a value, never a run this short twice over.
        self.chunks += [blob[i : i + 32] for i in range(0, len(blob) - 31, 32)]

    def add_jpeg(self, jpeg: bytes) -> None:
        """A crop of their face, or a photo uploaded for their enrollment only."""
        middle = len(jpeg) // 2  # entropy-coded data: JPEG headers are alike across photos
        self.chunks += [jpeg[middle : middle + 48], jpeg[-200:-152]]

    def in_text(self, text: str) -> list[str]:
        return [n for n in self.names if n in text]

    def in_bytes(self, data: bytes) -> list[str]:
        found = [n for n in self.names if n.encode() in data]
        if any(chunk in data for chunk in self.chunks):
            found.append("embedding or crop bytes")
        if not data or len(data) % 4:
            return found
        vectors = np.frombuffer(data, dtype=np.float32)
        if not np.all(np.isfinite(vectors)):
            return found
        for dim, known in self.embeddings.items():
            if len(vectors) % dim == 0:
                # Arbitrary bytes read as floats can be huge: float64 keeps the norms finite.
                rows = vectors.reshape(-1, dim).astype(np.float64)
                norms = np.linalg.norm(rows, axis=1, keepdims=True)
                rows = rows / np.where(norms == 0, 1, norms)
                if float(np.max(rows @ np.stack(known).T)) > 0.99:
                    found.append("an embedding (cosine > 0.99)")
        return found


def scan_tables(settings: Settings, traces: Traces) -> list[tuple[str, str, Any, list[str]]]:
    """(table, column, row's first value, what was found) for every cell that holds a trace."""
    hits = []
    with session_scope(settings) as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                for column, value in zip(table.columns, row, strict=True):
                    found = cell_traces(value, traces)
                    if found:
                        hits.append((table.name, column.name, row[0], found))
    return hits


def cell_traces(value: Any, traces: Traces) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bytes | memoryview):
        return traces.in_bytes(bytes(value))
    if isinstance(value, dict | list):
        return traces.in_text(json.dumps(value, ensure_ascii=False))
    return traces.in_text(str(value))


def scan_files(home: Path, traces: Traces) -> list[tuple[str, list[str]]]:
    hits = []
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        found = traces.in_bytes(path.read_bytes())
        if found:
            hits.append((str(path.relative_to(home)), found))
    return hits


def list_faces(endpoint: str, collection: str) -> list[dict[str, Any]]:
    client = boto3.client(
        "rekognition",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    faces: list[dict[str, Any]] = client.list_faces(CollectionId=collection)["Faces"]  # type: ignore[assignment]
    return faces


def serve(settings: Settings) -> AbstractContextManager[str]:
    """``facetrail serve`` on the test's own database (SQLite in its home, or PostgreSQL)."""
    env = {"FACETRAIL_DATABASE_URL": settings.database_url} if settings.database_url else {}
    return serve_process(settings.home, models_dir=settings.resolved_models_dir, env=env)


def subject_traces(settings: Settings) -> Traces:
    """Everything made of the subject's face, read before the erasure."""
    traces = Traces(names=[SUBJECT, DISPLAY])
    with session_scope(settings) as session:
        # Photos uploaded for their enrollment (one by the test, one crop by a correction).
        for source in session.scalars(
            select(JobItem.source).where(JobItem.person_external_id == SUBJECT)
        ):
            if source.startswith(UPLOAD_SCHEME):
                key = source[len(UPLOAD_SCHEME) :]
                traces.add_jpeg(image_store(settings).get(key, max_bytes=1 << 30))
        for face in session.scalars(select(Face)):
            if face.person.external_id == SUBJECT:
                assert face.embedding is not None and face.crop_jpeg is not None
                traces.add_embedding(face.embedding)
                traces.add_jpeg(face.crop_jpeg)
        for blob in session.scalars(
            select(LocalFace.embedding).where(LocalFace.external_id == SUBJECT)
        ):
            traces.add_embedding(blob)
        for result in session.scalars(select(FaceResult)):
            top = result.candidates[0]["person"] if result.candidates else None
            if SUBJECT in (result.person_external_id, top) and result.embedding is not None:
                traces.add_embedding(result.embedding)
    return traces


def prepare(settings: Settings) -> tuple[Facetrail, str, int, Traces]:
    """The subject through every job kind: the API, the staging index, the identify job that
    named them, and their traces."""
    ft = Facetrail(settings)
    rose = sorted(ROSE.iterdir())
    kit = sorted((KNN / "train" / "kit_harington").iterdir())
    entries: list[tuple[str | bytes, str]] = [(str(rose[0]), SUBJECT)]
    entries += [(rose[1].read_bytes(), SUBJECT)]  # uploaded into the image store
    entries += [(str(p), "kit") for p in kit] + [(str(KNN / "train/obama/obama.jpg"), "obama")]
    enrolled = ft.enroll("crew", entries)
    assert enrolled["status"] == "succeeded", enrolled
    with session_scope(settings) as session:
        catalog.set_public_figures(session, settings, "crew", True)
        people.set_urls(session, settings, "crew", SUBJECT, [URL])

    named = ft.identify("crew", [str(GROUP), str(rose[0])])
    assert named["status"] == "succeeded", named
    assert {f["person"] for i in named["images"] for f in i["faces"]} >= {SUBJECT, "kit"}
    # A threshold no face reaches: the subject's faces stay unnamed, they lead the candidates.
    strict = ft.identify("crew", [str(GROUP), str(rose[1])], threshold=100)
    faces = [f for i in strict["images"] for f in i["faces"]]
    assert faces and all(f["person"] is None for f in faces)
    tagged = ft.tag([str(GROUP)], ops=["people"])
    celebrities = tagged["images"][0]["results"]["people"]["CelebrityFaces"]
    assert {c["Id"] for c in celebrities} == {SUBJECT, "kit"}, celebrities

    # A re-index interrupted after the subject's faces reached the staging index.
    with session_scope(settings) as session:
        job = job_type("reindex").create(
            session, settings, ReindexRequest(collection="crew", embedder="dlib")
        )
        staging = job.parameters["staging_collection"]
    with session_scope(settings) as session:
        items = [session.get_one(JobItem, i) for i in pending_item_ids(session, job.id)]
        run = [i.id for i in items if i.person_external_id == SUBJECT] + [
            next(i.id for i in items if i.person_external_id == "kit")
        ]
    for item_id in run:
        run_item(settings, item_id)

    # Corrections: one of their faces left unnamed is said to be theirs (which enrolls a crop
    # of it, uploaded), kit's face is said not to be theirs; and a search of the past by them.
    theirs = next(f for f in faces if f["candidates"][0]["person"] == SUBJECT)
    assert ft.correct_is("crew", theirs["face_result_id"], SUBJECT)["enrolled"]
    kits = next(f for i in named["images"] for f in i["faces"] if f["person"] == "kit")
    ft.correct_not("crew", kits["face_result_id"], SUBJECT)
    assert ft.search_past("crew", person=SUBJECT)["matches"]
    return ft, staging, named["job_id"], subject_traces(settings)


def erase_and_scan(settings: Settings) -> None:
    ft, staging, named_job, traces = prepare(settings)
    # Two models (the live index's and the staging one's), copies in records and results.
    assert len(traces.embeddings) == 2 and sum(map(len, traces.embeddings.values())) >= 8
    # The scans find the subject everywhere their data went before the erasure.
    before = {table for table, *_ in scan_tables(settings, traces)}
    assert before >= {
        "people",
        "faces",
        "local_faces",
        "face_results",
        "tag_results",
        "job_items",
        "audit_log",
    }, before
    files = {path for path, _ in scan_files(settings.home, traces)}
    # The image store holds the uploaded enrollment photo; SQLite's files hold the rest.
    assert any(p.startswith("images/") for p in files), files
    if not settings.database_url:
        assert files & {"facetrail.db", "facetrail.db-wal"}, files
    with serve(settings) as endpoint:
        assert SUBJECT in {f.get("ExternalImageId") for f in list_faces(endpoint, staging)}

        result = ft.delete_person("crew", SUBJECT)
        # Two enrolled, their copies in the staging index, and the crop a correction enrolled.
        assert result["faces_deleted"] == 5 and result["backend_faces"] == 5, result
        assert result["corrections"] == 2, result

        staged = list_faces(endpoint, staging)
        assert staged and SUBJECT not in {f.get("ExternalImageId") for f in staged}
        assert {f["ExternalImageId"] for f in list_faces(endpoint, "crew")} == {"kit", "obama"}

    assert scan_tables(settings, traces) == []
    assert scan_files(settings.home, traces) == []
    with session_scope(settings) as session:
        tombstone = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "delete_person")
        ).one()
    assert tombstone.details["person_sha256"] == people.person_digest("crew", SUBJECT)
    # Everyone else's data is untouched: kit is still named where the subject no longer is.
    faces = [f for i in ft.job(named_job)["images"] for f in i["faces"]]
    assert {f["person"] for f in faces} == {"kit", None}
    assert all(c["person"] != SUBJECT for f in faces for c in f["candidates"])


def test_erasure_leaves_nothing_on_sqlite(settings: Settings) -> None:
    erase_and_scan(settings)


def test_erasure_leaves_nothing_on_postgresql(settings: Settings, postgres_url: str) -> None:
    shared = settings.with_(database_url=postgres_url)
    upgrade(shared)  # a shared database is migrated on purpose
    erase_and_scan(shared)


def test_items_running_while_their_person_is_erased_leave_nothing(settings: Settings) -> None:
    """An enrollment or re-index item that a worker runs while the person is erased undoes
    what it indexed, instead of bringing the person back."""
    # The enroll job below is made from a payload, as another app's would be: photos under roots.
    settings = settings.with_(image_roots=str(DATA))
    ft = Facetrail(settings)
    rose = sorted(ROSE.iterdir())
    ft.enroll("crew", [(str(rose[0]), SUBJECT), (str(KNN / "train/obama/obama.jpg"), "obama")])
    with session_scope(settings) as session:
        reindex = job_type("reindex").create(
            session, settings, ReindexRequest(collection="crew", embedder="dlib")
        )
        staging = reindex.parameters["staging_collection"]
        enroll = job_type("enroll").create(
            session,
            settings,
            job_type("enroll").parse(
                {"collection": "crew", "entries": [{"image": str(rose[1]), "person": SUBJECT}]}
            ),
        )
    with session_scope(settings) as session:
        items = [
            session.get_one(JobItem, i)
            for job in (reindex.id, enroll.id)
            for i in pending_item_ids(session, job)
        ]
        theirs = [i.id for i in items if i.person_external_id == SUBJECT]
        claims = [claim(session, i) for i in theirs]
    assert len(claims) == 2  # their re-index item and their second enrollment, both running

    ft.delete_person("crew", SUBJECT)
    for claimed in claims:
        assert claimed is not None
        with pytest.raises(NotFoundError):
            job_type(claimed.kind).run(Context(settings, claimed), claimed)
    backend = LocalBackend(settings)
    for index in ("crew", staging):
        assert SUBJECT not in {f.external_id for f in backend.list_faces(index)}
    with session_scope(settings) as session:
        assert session.scalar(select(Person).where(Person.external_id == SUBJECT)) is None
        statuses = {session.get_one(JobItem, i).status for i in theirs}
    assert statuses == {ItemStatus.FAILED}


def test_faces_indexed_under_their_id_without_a_record_are_erased(settings: Settings) -> None:
    """A face an interrupted item indexed but never recorded is found by the person's id; a
    face stored under the same id that our records give someone else (who was renamed away
    from it) stays theirs."""
    ft = Facetrail(settings)
    rose = sorted(ROSE.iterdir())
    kit = sorted((KNN / "train" / "kit_harington").iterdir())
    ft.enroll("crew", [(str(kit[0]), SUBJECT)])
    ft.rename_person("crew", SUBJECT, new_external_id="kit")
    ft.enroll("crew", [(str(rose[0]), SUBJECT)])  # the id, free again, now someone else's
    backend = LocalBackend(settings)
    orphan = backend.index_faces("crew", open_image(settings, str(rose[1])), external_id=SUBJECT)
    assert [f.external_id for f in backend.list_faces("crew")] == [SUBJECT] * 3

    assert ft.delete_person("crew", SUBJECT)["backend_faces"] == 2
    left = backend.list_faces("crew")
    assert orphan.indexed[0].face_id not in {f.face_id for f in left}
    with session_scope(settings) as session:
        kits = set(
            session.scalars(select(Face.face_id).join(Person).where(Person.external_id == "kit"))
        )
    assert {f.face_id for f in left} == kits and len(kits) == 1
