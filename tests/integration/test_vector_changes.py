"""Enrollments and deletions in one process reach another process's index as deltas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from facetrail.backends.local.backend import LocalBackend
from facetrail.images import load_image
from facetrail.migrate import upgrade
from facetrail.settings import Settings
from tests.conftest import KNN, ROOT

TRAIN = KNN / "train"


class Searcher:
    """``tests.vector_searcher`` in its own process, searching one collection."""

    def __init__(self, settings: Settings, collection: str) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "FACETRAIL_DATABASE_URL": settings.resolved_database_url,
            "FACETRAIL_MODELS_DIR": str(settings.resolved_models_dir),
            "FACETRAIL_HOME": str(settings.home),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.vector_searcher", collection],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert self.ask_line() == {"ready": True}

    def ask_line(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the searcher process exited"
        return json.loads(line)

    def search(self, vector: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps([float(v) for v in vector]) + "\n")
        self.proc.stdin.flush()
        return self.ask_line()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    if request.param == "postgresql":
        settings = settings.with_(database_url=request.getfixturevalue("postgres_url"))
    upgrade(settings)
    return settings


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
    assert backend.search_embeddings("again", first.indexed[0].embedding[None, :])[0]
    backend.delete_collection("again")
    backend.create_collection("again")
    assert backend.search_embeddings("again", first.indexed[0].embedding[None, :]) == [[]]
    assert backend._vectors.stats.reloads == 2
