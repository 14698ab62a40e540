"""Identify jobs and erasures in one process reach another process's past faces as deltas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from facetrail.api import Facetrail
from facetrail.migrate import upgrade
from facetrail.settings import Settings
from tests.conftest import KNN, ROOT


class PastSearcher:
    """``tests.past_searcher`` in its own process."""

    def __init__(self, settings: Settings) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "FACETRAIL_DATABASE_URL": settings.resolved_database_url,
            "FACETRAIL_MODELS_DIR": str(settings.resolved_models_dir),
            "FACETRAIL_HOME": str(settings.home),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.past_searcher"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert self.read() == {"ready": True}

    def read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the searcher process exited"
        return json.loads(line)

    def search(self, collection: str, **query: str) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps([collection, query]) + "\n")
        self.proc.stdin.flush()
        return self.read()

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


def test_past_faces_reach_another_process_without_a_reload(database_settings: Settings) -> None:
    ft = Facetrail(database_settings)
    ft.enroll("band", KNN / "train")
    ft.identify("band", [KNN / "test" / "obama1.jpg"])
    searcher = PastSearcher(database_settings)
    try:
        first = searcher.search("band", person="biden")
        assert (first["images"], first["reloads"], first["deltas"]) == ([], 1, 0)

        ft.identify("band", [KNN / "test" / "obama_and_biden.jpg"])
        # The very next search sees the new job's faces, applied as a delta.
        seen = searcher.search("band", person="biden")
        assert seen == {"images": ["obama_and_biden.jpg"], "reloads": 1, "deltas": 1}
        again = searcher.search("band", person="obama")
        assert again["images"] == ["obama1.jpg", "obama_and_biden.jpg"]
        assert (again["reloads"], again["deltas"]) == (1, 1)

        # An erasure in this process removes obama's faces from the other one's index too.
        ft.delete_person("band", "obama")
        photo = str(KNN / "train" / "obama" / "obama.jpg")
        gone = searcher.search("band", image=photo)
        assert gone == {"images": [], "reloads": 1, "deltas": 2}
        assert searcher.search("band", person="biden")["images"] == ["obama_and_biden.jpg"]
    finally:
        searcher.close()
