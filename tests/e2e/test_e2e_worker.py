"""End to end on real services: PostgreSQL, a Redis broker and a `facetrail worker` subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from facetrail.api import Facetrail
from facetrail.db import session_scope
from facetrail.models import FaceResult, Job, Person
from facetrail.settings import Settings
from tests.conftest import KNN, KNN_EXPECTED, knn_test_images

pytestmark = [pytest.mark.services, pytest.mark.e2e]


@pytest.fixture
def worker(service_settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "FACETRAIL_DATABASE_URL": service_settings.database_url,
        "FACETRAIL_BROKER_URL": service_settings.broker_url,
        "FACETRAIL_MODELS_DIR": str(service_settings.resolved_models_dir),
        "FACETRAIL_HOME": str(service_settings.home),
    }
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "facetrail.cli.main", "worker", "--concurrency", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()
    if proc.returncode not in (0, -signal.SIGTERM):
        print((tmp_path / "worker.log").read_text(errors="replace"))


def test_enroll_and_identify_through_a_worker(
    service_settings: Settings, worker: subprocess.Popen[bytes]
) -> None:
    ft = Facetrail(service_settings)
    enrolled = ft.enroll("band", KNN / "train", wait=False)
    assert enrolled["status"] in ("pending", "running")  # it went to the queue
    done = ft.wait(enrolled["job_id"], timeout=300)
    assert worker.poll() is None, "worker died"
    assert done["status"] == "succeeded", done
    report = ft.identify("band", knn_test_images(), wait=False)
    report = ft.wait(report["job_id"], timeout=300)
    assert report["status"] == "succeeded", report
    for image in report["images"]:
        names = {f["person"] for f in image["faces"] if f["person"]}
        assert names == KNN_EXPECTED[Path(image["image"]).name], image

    # The record lives in PostgreSQL: people, the job at its collection version, every face.
    with session_scope(service_settings) as session:
        people = set(session.scalars(select(Person.external_id)))
        assert people == {"alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"}
        job = session.get_one(Job, report["job_id"])
        assert job.collection_version == 9 and job.finished_at is not None
        faces = session.scalars(select(FaceResult)).all()
        assert len(faces) == sum(len(i["faces"]) for i in report["images"])


def test_worker_refuses_to_start_without_broker(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FACETRAIL_BROKER_URL"}
    env["FACETRAIL_HOME"] = str(tmp_path)
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "facetrail.cli.main", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "needs a broker" in out.stderr
    assert time.monotonic() - started < 60
