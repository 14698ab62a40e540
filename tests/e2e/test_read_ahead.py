"""Read-ahead through a real worker: while one item runs, the worker's main process fetches the
photos of the items it holds in reserve, so their URLs are requested before they are claimed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from facetrail.api import Facetrail
from facetrail.db import session_scope
from facetrail.models import JobItem
from facetrail.settings import Settings
from tests.badinputs import OBAMA
from tests.procs import Worker
from tests.served import PhotoLog, photo_server

pytestmark = [pytest.mark.services, pytest.mark.e2e]


PATHS = [f"/{i}.jpg" for i in range(6)]


@pytest.fixture
def photos() -> Iterator[PhotoLog]:
    with photo_server(dict.fromkeys(PATHS, OBAMA.read_bytes())) as served:
        yield served


def test_reserved_items_are_fetched_before_they_are_claimed(
    tmp_path: Path, service_settings: Settings, photos: PhotoLog
) -> None:
    settings = service_settings.with_(fetch_allow_networks="127.0.0.1/32")
    ft = Facetrail(settings)
    job_id = ft.tag([photos.url(p) for p in PATHS], ops=["labels"], wait=False)["job_id"]
    # One process: each item runs after the one before, while the next waits in reserve.
    worker = Worker(
        settings,
        tmp_path / "worker.log",
        concurrency=1,
        FACETRAIL_FETCH_ALLOW_NETWORKS="127.0.0.1/32",
        FACETRAIL_READ_AHEAD="1",
    )
    try:
        report = ft.wait(job_id, timeout=300)
    finally:
        worker.stop()
    assert report["status"] == "succeeded", report
    with session_scope(settings) as session:
        items = session.execute(
            select(JobItem.position, JobItem.started_at)
            .where(JobItem.job_id == job_id)
            .order_by(JobItem.position)
        ).all()
    claimed = {f"/{position}.jpg": started for position, started in items}
    # The first item may run as it arrives; every later one was in reserve while another ran.
    early = [p for p in PATHS[1:] if photos.first[p] < claimed[p]]
    assert early, "no photo was fetched before its item was claimed"
    # A read-ahead that lost the race to its item costs one more fetch, never more.
    assert all(photos.hits(p) <= 2 for p in PATHS), photos.requests
