"""Read-ahead: bytes fetched for a reserved item are what the item reads, once; anything not
read ahead (a failed fetch, a local file, a re-run, a claimed item) is fetched by the item as
before, with its own errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from facetrail.api import Facetrail
from facetrail.db import session_scope
from facetrail.jobs import readahead
from facetrail.jobs.runner import run_item
from facetrail.models import ItemStatus, JobItem
from facetrail.settings import Settings
from tests.badinputs import OBAMA
from tests.served import PhotoLog, photo_server


@pytest.fixture
def server() -> Iterator[PhotoLog]:
    with photo_server({"/obama.jpg": OBAMA.read_bytes()}) as photos:  # /missing.jpg: 404
        yield photos


@pytest.fixture
def loopback(settings: Settings) -> Iterator[Settings]:
    """Settings that may fetch from loopback, with this process's read-ahead started."""
    allowed = settings.with_(fetch_allow_networks="127.0.0.1/32")
    assert readahead.start(allowed) is not None
    yield allowed
    readahead.stop()


@pytest.fixture
def reader(loopback: Settings) -> readahead.ReadAhead:
    """The read-ahead ``loopback`` started, as a worker's main process holds it."""
    assert readahead._reader is not None
    return readahead._reader


def _items(settings: Settings, job_id: int) -> list[int]:
    with session_scope(settings) as session:
        return list(
            session.scalars(
                select(JobItem.id).where(JobItem.job_id == job_id).order_by(JobItem.position)
            )
        )


def _as_pending(settings: Settings, item_ids: list[int]) -> None:
    """Items as a worker finds them in its reserve: not claimed yet."""
    with session_scope(settings) as session:
        for item_id in item_ids:
            session.get_one(JobItem, item_id).status = ItemStatus.PENDING


def _status(settings: Settings, item_id: int) -> tuple[ItemStatus, str | None]:
    with session_scope(settings) as session:
        item = session.get_one(JobItem, item_id)
        return item.status, item.error_code


def test_a_photo_read_ahead_is_what_its_item_reads_once(
    loopback: Settings, server: PhotoLog, reader: readahead.ReadAhead
) -> None:
    url = server.url("/obama.jpg")
    job = Facetrail(loopback).tag([url], ops=["labels"])
    (item_id,) = _items(loopback, job["job_id"])
    assert server.hits("/obama.jpg") == 1
    _as_pending(loopback, [item_id])

    reader.read(item_id)
    assert server.hits("/obama.jpg") == 2
    assert run_item(loopback, item_id).status == ItemStatus.SUCCEEDED
    assert server.hits("/obama.jpg") == 2  # the item took the bytes read ahead
    assert readahead.take(item_id, url) is None  # and they are gone
    assert list(reader.folder.iterdir()) == []


def test_a_failed_read_ahead_leaves_the_item_its_own_fetch_and_error(
    loopback: Settings, server: PhotoLog, reader: readahead.ReadAhead
) -> None:
    url = server.url("/missing.jpg")
    job = Facetrail(loopback).tag([url], ops=["labels"])
    (item_id,) = _items(loopback, job["job_id"])
    _as_pending(loopback, [item_id])
    reader.read(item_id)
    assert list(reader.folder.iterdir()) == []
    assert run_item(loopback, item_id).status == ItemStatus.FAILED
    assert _status(loopback, item_id) == (ItemStatus.FAILED, "http_error")
    assert server.hits("/missing.jpg") == 3  # the first run, the read-ahead, the item again


def test_finished_items_and_local_files_are_not_read_ahead(
    loopback: Settings, server: PhotoLog, reader: readahead.ReadAhead
) -> None:
    url = server.url("/obama.jpg")
    ft = Facetrail(loopback)
    tagged = ft.tag([url, str(OBAMA)], ops=["labels"])
    remote, local = _items(loopback, tagged["job_id"])
    reader.read(remote)  # finished: its worker is done with it
    _as_pending(loopback, [local])
    reader.read(local)  # a local file: nothing to wait for
    assert server.hits("/obama.jpg") == 1
    assert list(reader.folder.iterdir()) == []


def test_local_items_cost_one_query_per_window_and_later_items_are_still_found(
    loopback: Settings, server: PhotoLog, reader: readahead.ReadAhead
) -> None:
    from tests.unit.test_round_trips import statements

    ft = Facetrail(loopback)
    first = _items(loopback, ft.tag([str(OBAMA)] * 5, ops=["labels"])["job_id"])
    with statements(loopback) as seen:
        for item_id in first:
            reader.read(item_id)
    assert len(seen) == 1  # the window read on the first item answers the other four
    url = server.url("/obama.jpg")
    later = _items(loopback, ft.tag([url], ops=["labels"])["job_id"])
    assert later[0] < first[0] + readahead.WINDOW  # inside that window, added after it was read
    _as_pending(loopback, later)
    hits = server.hits("/obama.jpg")
    reader.read(later[0])
    assert server.hits("/obama.jpg") == hits + 1
    assert readahead.take(later[0], url) == OBAMA.read_bytes()


def test_a_remote_item_claimed_after_its_window_was_read_is_not_fetched(
    loopback: Settings, server: PhotoLog, reader: readahead.ReadAhead
) -> None:
    url = server.url("/obama.jpg")
    ids = _items(loopback, Facetrail(loopback).tag([url, url], ops=["labels"])["job_id"])
    _as_pending(loopback, ids)
    reader.read(ids[0])  # reads the window: both items pending
    with session_scope(loopback) as session:
        session.get_one(JobItem, ids[1]).status = ItemStatus.RUNNING  # another worker's now
    hits = server.hits("/obama.jpg")
    reader.read(ids[1])
    assert server.hits("/obama.jpg") == hits
    assert readahead.take(ids[1], url) is None


def test_re_run_items_are_not_read_ahead(
    loopback: Settings, server: PhotoLog, reader: readahead.ReadAhead
) -> None:
    url = server.url("/obama.jpg")
    ft = Facetrail(loopback)
    from facetrail.images.scan import EnrollEntry

    ft.enroll("c", [EnrollEntry(str(OBAMA), "obama")])
    first = ft.identify("c", [url])
    rerun = ft.rerun(first["job_id"])
    (item_id,) = _items(loopback, rerun["job_id"])
    _as_pending(loopback, [item_id])
    hits = server.hits("/obama.jpg")
    reader.read(item_id)
    assert server.hits("/obama.jpg") == hits
    assert list(reader.folder.iterdir()) == []


def test_bytes_no_item_took_are_removed_after_a_while(reader: readahead.ReadAhead) -> None:
    readahead._store(reader.folder, 1, "http://a/1.jpg", b"old")
    stale = next(reader.folder.iterdir())
    past = time.time() - readahead.KEEP_SECONDS - 60
    os.utime(stale, (past, past))
    readahead._store(reader.folder, 2, "http://a/2.jpg", b"new")
    assert [p.name for p in reader.folder.iterdir()] == [readahead._name(2, "http://a/2.jpg")]
    assert readahead.take(2, "http://a/2.jpg") == b"new"
    assert readahead.take(2, "http://a/other.jpg") is None


def test_no_read_ahead_when_set_to_zero(settings: Settings, tmp_path: Path) -> None:
    assert readahead.start(settings.with_(read_ahead=0)) is None
    readahead.received(1)  # nothing to do it with
    assert readahead.take(1, "http://a/1.jpg") is None


def test_the_worker_reads_ahead_for_run_item_messages_and_passes_malformed_ones_by(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    from facetrail.worker import tasks

    seen: list[int] = []
    monkeypatch.setattr(readahead, "received", seen.append)
    messages = [
        (tasks.RUN_ITEM, [7], {}),
        (tasks.RUN_ITEM, [], {"item_id": 8}),
        ("facetrail.fan_out", [9, 0], {}),
        (tasks.RUN_ITEM, ["x"], {}),
        (tasks.RUN_ITEM, [True], {}),
        (tasks.RUN_ITEM, None, ["item_id"]),
        (tasks.RUN_ITEM, [], {}),
    ]
    for name, args, kwargs in messages:
        tasks._read_ahead(request=SimpleNamespace(name=name, args=args, kwargs=kwargs))
    assert seen == [7, 8]


def test_a_killed_workers_folder_is_removed_by_the_next_worker(tmp_path: Path) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = tmp_path / f"{readahead.PREFIX}{gone.stdout.strip()}-abc"
    alive = tmp_path / f"{readahead.PREFIX}{os.getpid()}-def"
    other = tmp_path / "facetrail-read-ahead-notapid-x"
    for folder in (dead, alive, other):
        folder.mkdir()
        (folder / "1-photo").write_bytes(b"x")
    readahead._remove_orphans(tmp_path)
    assert not dead.exists()
    assert alive.exists() and other.exists()
