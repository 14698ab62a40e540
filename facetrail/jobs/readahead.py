"""Read-ahead: a worker fetches the remote photos of the items it holds in reserve.

Celery hands each pool process one task at a time, and a process waiting for a photo's bytes
computes nothing. With ``FACETRAIL_READ_AHEAD`` = N (default 2) a worker reserves N more
``facetrail.run_item`` tasks per process (Celery's prefetch multiplier, ``worker/app.py``), and
as each arrives, its main process reads the item's source (an http(s) or s3 URL, through the
same opener and URL guards as the item itself) into a folder of that worker, on a few threads.
When the item runs, ``take`` hands it the bytes if they are there; if not (the read failed, or
has not finished), the item fetches as it always does, so a read-ahead can cost a second fetch
but never an item's result or its error.

Not read ahead: local files and uploads (nothing to wait for), items already claimed or finished,
and the items of re-runs, which answer from stored faces without reading their photos.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import bindparam, select

from facetrail.db import engine_for
from facetrail.images.opener import image_opener, scheme_of
from facetrail.models import ItemStatus, Job, JobItem
from facetrail.settings import Settings

log = logging.getLogger(__name__)

# Sources whose bytes come over the network.
REMOTE = ("http", "https", "s3")
# Threads of a worker's main process that read ahead.
THREADS = 4
# Bytes no item took within this many seconds (their item fetched them itself) are removed.
KEEP_SECONDS = 900.0
# A worker's folder: this, its main process's pid, "-", a random part.
PREFIX = "facetrail-read-ahead-"


# What decides whether an item is read ahead. An item's source and its job's re-run link never
# change, so they are read for a window of WINDOW item ids at once (a job's items have
# consecutive ids): a worker receiving local photos, which are never read ahead, queries once
# per WINDOW tasks instead of once per task. A remote item is read again before its fetch:
# another worker may have claimed it since, or its photo been erased (its source replaced).
WINDOW = 64
# Item ids whose source is remembered, at most (the oldest go first).
REMEMBERED = 4096
_WINDOW = (
    select(JobItem.id, JobItem.source, Job.rerun_of_id)
    .join(Job, JobItem.job_id == Job.id)
    .where(JobItem.id >= bindparam("first"), JobItem.id < bindparam("end"))
)
_NOW = select(JobItem.status, JobItem.source).where(JobItem.id == bindparam("item_id"))


def _name(item_id: int, source: str) -> str:
    return f"{item_id}-{hashlib.sha256(source.encode()).hexdigest()[:16]}"


class ReadAhead:
    """A worker's read-ahead: ``received(item_id)`` starts reading the item's photo into
    ``folder``; ``take`` (in any process of the worker) gets it."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings = settings
        self.folder = folder
        self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="facetrail-read-ahead")
        # item id -> (source, whether its job is a re-run), for the ids of the last windows read
        self._known: OrderedDict[int, tuple[str, bool]] = OrderedDict()
        self._lock = threading.Lock()

    def received(self, item_id: int) -> None:
        self._pool.submit(self.read, item_id)

    def read(self, item_id: int) -> None:
        """Read the item's photo into the folder now, if it is one to read ahead."""
        try:
            known = self._item(item_id)
            if known is None:
                return
            source, rerun = known
            if rerun or scheme_of(source) not in REMOTE:
                return
            with engine_for(self.settings.resolved_database_url).connect() as connection:
                now = connection.execute(_NOW, {"item_id": item_id}).first()
            if now is None or now.status != ItemStatus.PENDING or now.source != source:
                return
            deadline = time.monotonic() + self.settings.fetch_item_budget
            data = image_opener(self.settings).read_bytes(source, local=False, deadline=deadline)
            _store(self.folder, item_id, source, data)
        except Exception as exc:  # the item fetches it again and records any error itself
            log.debug("read-ahead of item %s: %s", item_id, exc)

    def _item(self, item_id: int) -> tuple[str, bool] | None:
        """The item's source and whether its job is a re-run; None if there is no such item."""
        with self._lock:
            known = self._known.get(item_id)
        if known is not None:
            return known
        with engine_for(self.settings.resolved_database_url).connect() as connection:
            rows = connection.execute(_WINDOW, {"first": item_id, "end": item_id + WINDOW})
            window = {row.id: (row.source, row.rerun_of_id is not None) for row in rows}
        with self._lock:
            self._known.update(window)
            while len(self._known) > REMEMBERED:
                self._known.popitem(last=False)
        return window.get(item_id)

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self.folder, ignore_errors=True)


def _store(folder: Path, item_id: int, source: str, data: bytes) -> None:
    """Write ``data`` for the item where ``take`` finds it whole (a rename), removing bytes
    that waited too long for their item."""
    final = folder / _name(item_id, source)
    partial = folder / f".{final.name}.part"
    partial.write_bytes(data)
    os.replace(partial, final)
    cutoff = time.time() - KEEP_SECONDS
    for stale in folder.iterdir():
        try:
            if stale.stat().st_mtime < cutoff:
                stale.unlink()
        except FileNotFoundError:
            pass  # taken or removed meanwhile


# This worker's read-ahead: started in its main process, and inherited with its folder by the
# pool processes, which are forked after ``start``.
_reader: ReadAhead | None = None


def start(settings: Settings) -> ReadAhead | None:
    """Start reading ahead for this worker (its main process, before the pool starts); None
    when ``settings.read_ahead`` is 0."""
    global _reader
    if settings.read_ahead <= 0:
        return None
    _remove_orphans(Path(tempfile.gettempdir()))
    _reader = ReadAhead(settings, Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")))
    return _reader


def _remove_orphans(parent: Path) -> None:
    """Remove the folders of workers that were killed before they could (their pid is gone)."""
    for folder in parent.glob(f"{PREFIX}*-*"):
        pid = folder.name[len(PREFIX) :].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass  # alive, another user's


def received(item_id: int) -> None:
    """A ``facetrail.run_item`` task arrived at this worker: read its photo ahead."""
    if _reader is not None:
        _reader.received(item_id)


def stop() -> None:
    global _reader
    if _reader is not None:
        _reader.stop()
    _reader = None


def take(item_id: int, source: str) -> bytes | None:
    """The bytes read ahead for this item's ``source``, once (None where there are none, and
    for sources that are never read ahead)."""
    if _reader is None or scheme_of(source) not in REMOTE:
        return None
    path = _reader.folder / _name(item_id, source)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    path.unlink(missing_ok=True)
    return data
