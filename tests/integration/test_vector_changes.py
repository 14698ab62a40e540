"""Enrollments and deletions in one process reach another process's index as deltas; a new
process loads a saved index and applies only the changes since; change logs are pruned."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from facetrail.backends.local.backend import LocalBackend
from facetrail.backends.local.vectors import log_changes
from facetrail.db import session_scope
from facetrail.images import load_image
from facetrail.migrate import upgrade
from facetrail.models import CollectionChange, LocalFaceChange
from facetrail.services import records
from facetrail.services.records import bump_version, get_or_create_collection
from facetrail.settings import Settings
from facetrail.vectors import logged
from tests.conftest import KNN
from tests.procs import LineProcess

TRAIN = KNN / "train"


class Searcher(LineProcess):
    """``tests.vector_searcher`` in its own process, searching one collection."""

    def __init__(self, settings: Settings, collection: str) -> None:
        super().__init__(
            "tests.vector_searcher",
            settings,
            collection,
            FACETRAIL_VECTOR_EXACT_LIMIT=str(settings.vector_exact_limit),
        )
        assert self.ready == {"ready": True}

    def search(self, vector: Any) -> Any:
        return self.ask([float(v) for v in vector])


def photo(person: str, name: str) -> Any:
    return load_image(TRAIN / person / name, max_bytes=40 << 20, max_pixels=50_000_000)


def test_changes_reach_another_process_without_a_reload(database_settings: Settings) -> None:
    writer = LocalBackend(database_settings)
    writer.create_collection("people")
    obama = writer.index_faces("people", photo("obama", "obama.jpg"), external_id="obama")
    obama_face = obama.indexed[0]
    searcher = Searcher(database_settings, "people")
    try:
        first = searcher.search(obama_face.embedding)
        assert first["faces"][0] == obama_face.face_id
        assert (first["reloads"], first["deltas"]) == (1, 0)

        biden = writer.index_faces("people", photo("biden", "biden.jpg"), external_id="biden")
        biden_face = biden.indexed[0]
        # The very next search sees the enrollment, applied as a delta, not a reload.
        seen = searcher.search(biden_face.embedding)
        assert seen["faces"][0] == biden_face.face_id and seen["people"][0] == "biden"
        assert (seen["reloads"], seen["deltas"]) == (1, 1)
        # Nothing changed since: no work at all.
        again = searcher.search(biden_face.embedding)
        assert (again["reloads"], again["deltas"]) == (1, 1)

        assert writer.delete_faces("people", [obama_face.face_id]) == [obama_face.face_id]
        gone = searcher.search(obama_face.embedding)
        assert obama_face.face_id not in gone["faces"]
        assert gone["faces"] == [biden_face.face_id]
        assert (gone["reloads"], gone["deltas"]) == (1, 2)
    finally:
        searcher.close()


def test_a_collection_made_again_under_its_name_is_reloaded(settings: Settings) -> None:
    upgrade(settings)
    backend = LocalBackend(settings)
    backend.create_collection("again")
    first = backend.index_faces("again", photo("obama", "obama.jpg"), external_id="obama")
    embedding = first.indexed[0].embedding
    assert embedding is not None
    assert backend.search_embeddings("again", embedding[None, :])[0]
    backend.delete_collection("again")
    backend.create_collection("again")
    assert backend.search_embeddings("again", embedding[None, :]) == [[]]
    assert backend._vectors.stats.reloads == 2


def snapshot_bytes(settings: Settings) -> bytes:
    files = sorted(settings.resolved_vector_snapshots.rglob("*"))
    return b"".join(p.read_bytes() for p in files if p.is_file())


def test_a_new_process_loads_the_saved_index_and_applies_later_changes(
    database_settings: Settings,
) -> None:
    # Every collection is a graph here, so it is saved when built (the costly kind to build).
    settings = database_settings.with_(vector_exact_limit=1)
    writer = LocalBackend(settings)
    writer.create_collection("people")
    faces = {
        person: writer.index_faces("people", photo(person, name), external_id=person).indexed[0]
        for person, name in [("obama", "obama.jpg"), ("biden", "biden.jpg")]
    }
    obama_embedding = faces["obama"].embedding
    assert obama_embedding is not None
    assert writer.search_embeddings("people", obama_embedding[None, :])
    assert writer._vectors.stats.snapshot_loads == 0  # built from the database, and saved
    obama = obama_embedding.astype(np.float16).tobytes()
    assert obama in snapshot_bytes(settings)

    kit = writer.index_faces("people", photo("kit_harington", "john1.jpeg"), external_id="kit")
    kit_face = kit.indexed[0]
    assert kit_face.embedding is not None
    searcher = Searcher(settings, "people")  # started after the enrollment
    try:
        seen = searcher.search(kit_face.embedding)
        assert seen["faces"][0] == kit_face.face_id and seen["people"][0] == "kit"
        assert (seen["reloads"], seen["snapshot_loads"], seen["deltas"]) == (1, 1, 0)

        rose = writer.index_faces("people", photo("rose_leslie", "img1.jpg"), external_id="rose")
        rose_face = rose.indexed[0]
        later = searcher.search(rose_face.embedding)
        assert later["faces"][0] == rose_face.face_id
        assert (later["reloads"], later["snapshot_loads"], later["deltas"]) == (1, 1, 1)

        # Deleting drops the saved indexes at once (they hold the face); the searcher applies
        # the removal and saves its index again, without it.
        writer.delete_faces("people", [faces["obama"].face_id])
        assert obama not in snapshot_bytes(settings)
        gone = searcher.search(faces["obama"].embedding)
        assert faces["obama"].face_id not in gone["faces"]
        assert (gone["reloads"], gone["deltas"]) == (1, 2)
        files = snapshot_bytes(settings)
        assert obama not in files
        assert kit_face.embedding.astype(np.float16).tobytes() in files
    finally:
        searcher.close()


def test_change_logs_keep_only_the_newest_positions(
    database_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in (logged, records):
        monkeypatch.setattr(module, "PRUNE_EVERY", 4)
        monkeypatch.setattr(module, "LOG_KEEP", 6)
    settings = database_settings
    LocalBackend(settings).create_collection("logged")
    with session_scope(settings) as session:
        collection = get_or_create_collection(session, "logged", "local", {})
        session.flush()
        for i in range(13):
            log_changes(session, "logged", [f"face-{i}"], [])
            bump_version(session, collection, people=[i])
    with session_scope(settings) as session:
        faces = session.scalars(
            select(LocalFaceChange.generation).order_by(LocalFaceChange.generation)
        ).all()
        people = session.scalars(
            select(CollectionChange.version).order_by(CollectionChange.version)
        ).all()
    # Pruned at 4, 8 and 12: what is left is the newest LOG_KEEP positions as of 12, and 13.
    assert faces == people == list(range(7, 14))
