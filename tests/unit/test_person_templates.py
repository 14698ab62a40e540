"""Person templates follow enrollments, renames, merges and deletions as deltas; saved
templates are loaded by a new worker, and erasure leaves none of the erased person's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import event, select

from facetrail.api import Facetrail
from facetrail.backends import backend_for
from facetrail.backends.local.vectors import from_blob
from facetrail.db import engine_for, session_scope
from facetrail.images.scan import enroll_entries
from facetrail.models import Collection, Face, FaceResult, JobItem, Person
from facetrail.services import naming
from facetrail.settings import Settings
from facetrail.vectors import template
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


def test_templates_of_a_collection_that_had_no_faces_take_the_first_enrollment(
    settings: Settings,
) -> None:
    """An identify job against an empty collection caches templates of no dimension; the first
    enrollment after it gives them their dimension as a delta (no reload) and is named."""
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
    assert counts() == (reloads, deltas + 1)


def template_of(settings: Settings, collection: str, person: str) -> bytes:
    """A person's template as the graph stores it (float16 bytes)."""
    with session_scope(settings) as session:
        embeddings = session.scalars(
            select(Face.embedding)
            .join(Person, Face.person_id == Person.id)
            .join(Collection, Person.collection_id == Collection.id)
            .where(Collection.name == collection, Person.external_id == person)
        ).all()
    blobs = [e for e in embeddings if e is not None]
    assert len(blobs) == len(embeddings)  # the local backend keeps every face's embedding
    return template(np.stack([from_blob(e) for e in blobs])).astype(np.float16).tobytes()


def saved(settings: Settings) -> bytes:
    files = sorted(settings.resolved_vector_snapshots.rglob("*"))
    return b"".join(p.read_bytes() for p in files if p.is_file())


def test_a_new_worker_loads_saved_templates_and_erasure_leaves_none(settings: Settings) -> None:
    settings = settings.with_(template_exact_limit=1)  # templates in a graph, which is saved
    ft = Facetrail(settings)
    entries = enroll_entries(KNN / "train")
    ft.enroll("saved", [e for e in entries if e.external_id != "rose_leslie"])
    photo = [KNN / "test" / "kit_with_rose.jpg"]
    assert named(ft.identify("saved", photo)) == {"kit_with_rose.jpg": {"kit_harington"}}
    kit = template_of(settings, "saved", "kit_harington")
    assert kit in saved(settings)

    ft.enroll("saved", [e for e in entries if e.external_id == "rose_leslie"])
    naming._templates.clear()  # a worker started now, with nothing in memory
    loads = naming.stats.snapshot_loads
    assert named(ft.identify("saved", photo)) == {
        "kit_with_rose.jpg": {"kit_harington", "rose_leslie"}
    }
    assert naming.stats.snapshot_loads == loads + 1  # the saved templates and one change

    ft.delete_person("saved", "kit_harington")
    assert kit not in saved(settings)
    assert named(ft.identify("saved", photo)) == {"kit_with_rose.jpg": {"rose_leslie"}}
    assert kit not in saved(settings)
    assert template_of(settings, "saved", "rose_leslie") in saved(settings)


def test_named_people_get_their_ids_from_current_templates(settings: Settings) -> None:
    ft = Facetrail(settings)
    ft.enroll("band", KNN / "train")
    photo = [KNN / "test" / "kit_with_rose.jpg"]
    ft.identify("band", photo)
    ft.rename_person("band", "rose_leslie", new_external_id="rose")
    report = ft.identify("band", photo)  # the rename reaches the templates as a delta
    assert named(report) == {"kit_with_rose.jpg": {"kit_harington", "rose"}}
    with session_scope(settings) as session:
        collection = session.scalars(select(Collection).where(Collection.name == "band")).one()
        people = dict(
            session.execute(
                select(Person.external_id, Person.id).where(Person.collection_id == collection.id)
            )
            .tuples()
            .all()
        )
        backend = backend_for(settings, collection.backend, dict(collection.backend_options))
        seen: list[object] = []
        engine = engine_for(settings.resolved_database_url)
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            known = naming.person_ids(session, collection.id, backend, ["rose", "kit_harington"])
            assert seen == []  # both from the templates
            gone = naming.person_ids(session, collection.id, backend, ["rose_leslie"])
            assert len(seen) == 1  # an old name is not in the templates: the database says
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        rows = session.execute(
            select(FaceResult.person_external_id, FaceResult.person_id)
            .join(JobItem, FaceResult.job_item_id == JobItem.id)
            .where(JobItem.job_id == report["job_id"], FaceResult.person_id.is_not(None))
        ).tuples()
        stored = dict(rows.all())
    assert known == {"rose": people["rose"], "kit_harington": people["kit_harington"]}
    assert gone == {}
    assert stored == known
