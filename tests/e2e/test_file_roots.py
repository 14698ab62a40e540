"""Local files only under the configured image roots for jobs from other apps (docs/security.md).

A ``facetrail.submit`` payload run by a real worker (Redis, PostgreSQL) may name local files only
under ``FACETRAIL_IMAGE_ROOTS``, resolved after symlinks; every other path fails with the same
message whatever the file is. Jobs a local user creates read any file they name.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import func, select

from facetrail.api import Facetrail
from facetrail.db import session_scope
from facetrail.errors import SourceRefusedError
from facetrail.images.opener import ImageOpener
from facetrail.models import Face, Job, JobItem, JobStatus, Person
from facetrail.settings import Settings
from tests.conftest import KNN
from tests.procs import Worker

OBAMA = KNN / "test" / "obama1.jpg"
BIDEN = KNN / "train" / "biden" / "biden.jpg"


def hostile_sources(tmp_path: Path, root: Path) -> list[str]:
    """Paths outside ``root`` of every kind: existing or not, folders, FIFOs, big files,
    unreadable ones, symlinks and ``..`` out of the root, ``file://`` URIs, a sibling whose name
    starts like the root's."""
    outside = tmp_path / "outside"
    outside.mkdir()
    big = outside / "big.jpg"
    big.write_bytes(b"\xff" * 4096)
    os.mkfifo(outside / "pipe.jpg")
    secret = outside / "secret.jpg"
    secret.write_bytes(OBAMA.read_bytes())
    locked = outside / "locked.jpg"
    locked.write_bytes(b"x")
    locked.chmod(0)
    (root / "escape.jpg").symlink_to(secret)
    (root / "escape_dir").symlink_to(outside, target_is_directory=True)
    sibling = Path(str(root) + "x")
    sibling.mkdir()
    (sibling / "a.jpg").write_bytes(OBAMA.read_bytes())
    return [
        "/etc/shadow",
        "/etc/passwd",
        "/etc",
        "/no/such/file.jpg",
        str(big),
        str(outside / "pipe.jpg"),
        str(secret),
        str(locked),
        str(root / "escape.jpg"),
        str(root / "escape_dir" / "secret.jpg"),
        str(root / ".." / "outside" / "secret.jpg"),
        secret.as_uri(),
        str(sibling / "a.jpg"),
        str(OBAMA),
    ]


def test_path_reader_refuses_everything_outside_the_roots_alike(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    (root / "obama.jpg").write_bytes(OBAMA.read_bytes())
    (root / "inner.jpg").symlink_to(root / "obama.jpg")  # a symlink that stays inside
    opener = ImageOpener(
        Settings(home=tmp_path / "home", image_roots=f"{root}", max_image_bytes=1000_000)
    )
    messages = set()
    for source in hostile_sources(tmp_path, root):
        with pytest.raises(SourceRefusedError) as caught:
            opener.open(source, local=False)
        assert caught.value.code == "source_refused"
        messages.add(caught.value.message.replace(source, "<source>"))
    # One message for all: nothing tells a missing file from a folder, a FIFO or a big file.
    assert messages == {
        "<source>: local files are read only under the configured image roots "
        "(FACETRAIL_IMAGE_ROOTS)"
    }
    assert opener.open(str(root / "obama.jpg"), local=False).width > 0
    assert opener.open(str(root / "inner.jpg"), local=False).width > 0
    assert opener.open((root / "obama.jpg").as_uri(), local=False).width > 0
    # A local user (the default for direct callers) reads any file.
    assert opener.open(str(OBAMA)).width > 0
    # No roots configured: nothing local at all for a caller that is not local.
    with pytest.raises(SourceRefusedError):
        ImageOpener(Settings(home=tmp_path / "home")).open(str(root / "obama.jpg"), local=False)


def test_roots_setting_takes_colons_or_commas() -> None:
    settings = Settings.from_env({"FACETRAIL_IMAGE_ROOTS": "/srv/a:/srv/b, /srv/c,"})
    assert settings.image_root_list == ("/srv/a", "/srv/b", "/srv/c")


@pytest.fixture
def rooted_worker(service_settings: Settings, tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "photos"
    root.mkdir()
    worker = Worker(service_settings, tmp_path / "worker.log", FACETRAIL_IMAGE_ROOTS=str(root))
    yield root
    worker.stop()


def wait_finished(settings: Settings, job_id: int, timeout: float = 240) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(settings) as session:
            job = session.get(Job, job_id)
            if job is not None and job.status not in (JobStatus.PENDING, JobStatus.RUNNING):
                return job
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} did not finish")


def job_of(settings: Settings, request_id: str, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(settings) as session:
            found = session.scalar(select(Job.id).where(Job.request_id == request_id))
        if found is not None:
            return found
        time.sleep(0.3)
    raise TimeoutError(f"no job for {request_id}")


@pytest.mark.services
@pytest.mark.e2e
def test_a_worker_reads_payload_files_only_under_its_roots(
    service_settings: Settings, rooted_worker: Path, tmp_path: Path
) -> None:
    root = rooted_worker
    (root / "biden.jpg").write_bytes(BIDEN.read_bytes())
    hostile = hostile_sources(tmp_path, root)
    entries = [{"image": str(root / "biden.jpg"), "person": "biden"}] + [
        {"image": source, "person": "intruder"} for source in hostile
    ]
    client = Celery(broker=service_settings.broker_url)
    client.conf.update(task_default_queue="facetrail", task_serializer="json")
    try:
        client.send_task(
            "facetrail.submit",
            args=[{"kind": "enroll", "collection": "band", "entries": entries, "request_id": "r1"}],
        )
        job_id = job_of(service_settings, "r1")
        job = wait_finished(service_settings, job_id)
        assert job.succeeded_items == 1 and job.failed_items == len(hostile)
        with session_scope(service_settings) as session:
            items = session.scalars(
                select(JobItem).where(JobItem.job_id == job_id).order_by(JobItem.position)
            ).all()
            inside, *outside = items
            assert inside.error is None
            for item in outside:
                assert item.error_code == "source_refused", (item.source, item.error)
                assert item.error == (
                    f"{item.source}: local files are read only under the configured image "
                    "roots (FACETRAIL_IMAGE_ROOTS)"
                )
            # Nothing of the files outside was stored under the name the payload gave.
            assert session.scalar(select(Person.id).where(Person.external_id == "intruder")) is None
            assert session.scalar(select(func.count()).select_from(Face)) == 1
        # A local user's job through the same worker reads the files they name, anywhere.
        ft = Facetrail(service_settings)
        report = ft.wait(
            ft.enroll("band", [(str(OBAMA), "obama")], wait=False)["job_id"], timeout=240
        )
        assert report["status"] == "succeeded", report
        assert report["parameters"]["trusted_paths"] is True
    finally:
        client.close()


def test_a_payload_cannot_claim_trusted_paths(settings: Settings) -> None:
    from facetrail.errors import InvalidParameterError
    from facetrail.jobs.submit import parse_payload

    with pytest.raises(InvalidParameterError, match="trusted_paths: Extra inputs"):
        parse_payload({"kind": "tag", "images": ["/etc/passwd"], "trusted_paths": True})
