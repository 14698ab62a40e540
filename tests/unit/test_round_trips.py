"""Database round trips per identification item, counted with a SQLAlchemy event listener."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from facetrail.api import Facetrail
from facetrail.db import engine_for
from facetrail.settings import Settings
from tests.conftest import KNN

# Statements per item of a first identify run, the job's creation and report included: claim
# (item, job and collection in one), the image row, the collection's version for its
# templates, the item's results, the past faces' log (the collection's past generation and the
# item's change rows: 2) and the item's end counted in its job (2 UPDATEs): 12.75 (13.75 while
# the named people's ids were read from the database rather than from the templates; 15.9
# before the end was counted rather than recounted and the local index's generation was no
# longer read for a search the templates make; 21.9 before the claim stopped recounting the
# job and a first attempt stopped clearing; 17.9 before the claim read item, job and
# collection in one statement and the task stopped reading the item's job back after running
# it; 13.9 before the past faces' log). Once per job, not per item, its unknown faces are
# clustered (docs/unknowns.md): about a dozen statements, some 0.6 more per item over these 20
# items.
MAX_STATEMENTS_PER_ITEM = 13


@contextmanager
def statements(settings: Settings) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = engine_for(settings.resolved_database_url)

    def count(*args: Any) -> None:
        seen.append(" ".join(str(args[2]).split())[:90])

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_an_identify_item_takes_few_statements(settings: Settings) -> None:
    ft = Facetrail(settings)
    ft.enroll("band", KNN / "train")
    photos = sorted((KNN / "test").iterdir()) * 4
    ft.identify("band", photos[:1])  # models loaded, first-use queries done
    with statements(settings) as seen:
        report = ft.identify("band", photos)
    assert report["status"] == "succeeded"
    per_item = len(seen) / len(photos)
    assert per_item <= MAX_STATEMENTS_PER_ITEM, "\n".join(seen)
