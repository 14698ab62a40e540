"""Person templates follow enrollments, renames, merges and deletions as deltas."""

from __future__ import annotations

from pathlib import Path

from facetrail.api import Facetrail
from facetrail.images.scan import enroll_entries
from facetrail.services import naming
from facetrail.settings import Settings
from tests.conftest import KNN


def named(report: dict[str, object]) -> dict[str, set[str]]:
    images = report["images"]
    assert isinstance(images, list)
    return {Path(i["image"]).name: {f["person"] for f in i["faces"] if f["person"]} for i in images}


def counts() -> tuple[int, int]:
    return naming.stats.reloads, naming.stats.deltas


def test_template_changes_are_applied_not_reloaded(settings: Settings) -> None:
    ft = Facetrail(settings)
    entries = enroll_entries(KNN / "train")
    ft.enroll("band", [e for e in entries if e.external_id != "rose_leslie"])
    photo = [KNN / "test" / "kit_with_rose.jpg"]
    reloads, deltas = counts()
    assert named(ft.identify("band", photo)) == {"kit_with_rose.jpg": {"kit_harington"}}
    assert counts() == (reloads + 1, deltas)

    ft.enroll("band", [e for e in entries if e.external_id == "rose_leslie"])
    assert named(ft.identify("band", photo)) == {
        "kit_with_rose.jpg": {"kit_harington", "rose_leslie"}
    }
    assert counts() == (reloads + 1, deltas + 1)

    ft.rename_person("band", "rose_leslie", new_external_id="rose")
    ft.merge_people("band", "kit_harington", "rose")  # a wrong merge: both faces now one person
    report = named(ft.identify("band", photo))["kit_with_rose.jpg"]
    assert report == {"rose"}  # one person is named at most once per photo
    assert counts() == (reloads + 1, deltas + 2)

    # Erasure drops the erasing process's copies at once (docs/security.md), so this process
    # reloads; every other process applies the deletion as a delta (test_vector_changes).
    ft.delete_person("band", "rose")
    assert named(ft.identify("band", photo)) == {"kit_with_rose.jpg": set()}
    assert counts() == (reloads + 2, deltas + 2)


def test_templates_of_a_collection_that_had_no_faces_are_reloaded(settings: Settings) -> None:
    """An identify job against an empty collection caches templates of no dimension; the first
    enrollment after it is loaded whole, not applied as a delta to them."""
    from facetrail.db import session_scope
    from facetrail.services import catalog

    ft = Facetrail(settings)
    with session_scope(settings) as session:
        catalog.create_collection(session, settings, "band")
    photo = [KNN / "test" / "obama1.jpg"]
    assert named(ft.identify("band", photo)) == {"obama1.jpg": set()}
    ft.enroll("band", [e for e in enroll_entries(KNN / "train") if e.external_id == "obama"])
    reloads, deltas = counts()
    assert named(ft.identify("band", photo)) == {"obama1.jpg": {"obama"}}
    assert counts() == (reloads + 1, deltas)
