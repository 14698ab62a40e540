"""Identify jobs and erasures in one process reach another process's past faces as deltas."""

from __future__ import annotations

from typing import Any

from facetrail.api import Facetrail
from facetrail.settings import Settings
from tests.conftest import KNN
from tests.procs import LineProcess


class PastSearcher(LineProcess):
    """``tests.past_searcher`` in its own process."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("tests.past_searcher", settings)
        assert self.ready == {"ready": True}

    def search(self, collection: str, **query: str) -> Any:
        return self.ask([collection, query])


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
