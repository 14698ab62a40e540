"""Corrections and the past through real workers: PostgreSQL, a Redis broker, a worker process.

Corrections made in this process hold in the identify items a worker runs (a re-run whose photos
must be read again, a new job), and a worker answers ``facetrail.search_past`` on Redis.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from facetrail.api import Facetrail
from facetrail.client import FacetrailClient
from facetrail.db import session_scope
from facetrail.images.scan import enroll_entries
from facetrail.models import JobItem
from facetrail.settings import Settings
from tests.conftest import KNN, knn_test_images
from tests.procs import Worker

pytestmark = [pytest.mark.services, pytest.mark.e2e]


@pytest.fixture
def service_settings(service_settings: Settings) -> Settings:
    """The shared settings (tests/e2e/conftest.py), acting as "tester"."""
    return service_settings.with_(actor="tester")


@pytest.fixture
def worker(service_settings: Settings, tmp_path: Path) -> Iterator[Worker]:
    proc = Worker(service_settings, tmp_path / "worker.log")
    yield proc
    proc.stop()


def faces(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    image = next(i for i in report["images"] if Path(i["image"]).name == name)
    found: list[dict[str, Any]] = image["faces"]
    return found


def named(report: dict[str, Any], name: str) -> dict[tuple[float, ...], str | None]:
    """Box -> person, for one photo of a job."""
    return {tuple(f["box"].values()): f["person"] for f in faces(report, name)}


def test_corrections_survive_reruns_run_by_a_worker(
    service_settings: Settings, worker: Worker
) -> None:
    ft = Facetrail(service_settings)
    done = ft.enroll("band", [e for e in enroll_entries(KNN / "train") if e.external_id != "biden"])
    assert done["status"] == "succeeded", done
    first = ft.identify("band", knn_test_images())
    assert first["status"] == "succeeded", first

    kit = next(f for f in faces(first, "kit_with_rose.jpg") if f["person"] == "kit_harington")
    unknown = [f for f in faces(first, "obama_and_biden.jpg") if f["person"] is None]
    biden = max(unknown, key=lambda f: f["box"]["width"] * f["box"]["height"])
    kit_box, biden_box = tuple(kit["box"].values()), tuple(biden["box"].values())
    ft.correct_not("band", kit["face_result_id"], "kit_harington")
    corrected = ft.correct_is("band", biden["face_result_id"], "biden")
    assert corrected["enrolled"] is True, corrected  # the enroll job ran on the worker

    # Erasing rose and obama takes the embeddings of their faces: both photos must be read
    # again, so the re-run's items for them run on the worker, which must obey.
    ft.delete_person("band", "rose_leslie")
    ft.delete_person("band", "obama")
    rerun = ft.rerun(first["job_id"])
    assert rerun["status"] == "succeeded", rerun
    report = ft.job(rerun["job_id"])
    with session_scope(service_settings) as session:
        attempts = {
            Path(i.source).name: i.attempts
            for i in session.scalars(select(JobItem).where(JobItem.job_id == rerun["job_id"]))
        }
    # Photos with an erased face ran as items (claimed by the worker); the rest came from
    # stored embeddings.
    ran = {n for n, a in attempts.items() if a}
    assert ran == {"kit_with_rose.jpg", "obama_and_biden.jpg", "obama1.jpg"}
    assert named(report, "kit_with_rose.jpg")[kit_box] is None
    assert named(report, "obama_and_biden.jpg")[biden_box] == "biden"
    assert worker.proc.poll() is None, "worker died"

    # A new job of the same photos, on the worker, obeys too; other photos of kit do not change.
    fresh = ft.identify("band", knn_test_images())
    assert named(fresh, "kit_with_rose.jpg")[kit_box] is None
    assert named(fresh, "obama_and_biden.jpg")[biden_box] == "biden"
    assert set(named(fresh, "johnsnow_test1.jpg").values()) == {"kit_harington"}

    # And a re-run of that one (from stored embeddings, in this process) keeps them.
    again = ft.job(ft.rerun(fresh["job_id"])["job_id"])
    assert named(again, "kit_with_rose.jpg")[kit_box] is None
    assert named(again, "obama_and_biden.jpg")[biden_box] == "biden"


def test_a_worker_answers_search_past_on_redis(service_settings: Settings, worker: Worker) -> None:
    import redis
    from celery import Celery

    ft = Facetrail(service_settings)
    ft.enroll("band", KNN / "train")
    ft.identify("band", knn_test_images())
    app = Celery(broker=service_settings.broker_url)
    client = redis.Redis.from_url(service_settings.broker_url)

    def ask(payload: dict[str, Any]) -> dict[str, Any]:
        request_id = uuid.uuid4().hex
        app.send_task(
            "facetrail.search_past", args=[{**payload, "request_id": request_id}], queue="facetrail"
        )
        deadline = time.monotonic() + 120
        while (raw := client.lindex(f"facetrail:done:{request_id}", 0)) is None:
            assert time.monotonic() < deadline, "no answer"
            time.sleep(0.2)
        answer: dict[str, Any] = json.loads(raw)
        assert answer["request_id"] == request_id
        return answer

    try:
        answer = ask({"collection": "band", "person": "biden", "actor": "app"})
        assert answer["status"] == "succeeded", answer
        assert [Path(m["image"]).name for m in answer["matches"]] == ["obama_and_biden.jpg"]
        # Outside the image roots (none are set), a path is refused, as for any app's job.
        refused = ask({"collection": "band", "image": str(KNN / "test" / "obama1.jpg")})
        assert (refused["status"], refused["code"]) == ("failed", "source_refused")
        bad = ask({"collection": "band"})
        assert (
            bad["status"] == "rejected"
            and "exactly one of image, person and cluster" in bad["error"]
        )
        event = ft.audit_log("band", limit=1)[0]
        assert (event["action"], event["actor"]) == ("search_past", "app")
        # The standalone client sends the same payload; a photo as bytes needs no roots.
        facetrail_client = FacetrailClient(service_settings.broker_url, actor="gallery")
        try:
            photo = (KNN / "train" / "obama" / "obama.jpg").read_bytes()
            by_photo = facetrail_client.wait(
                facetrail_client.search_past("band", photo), timeout=120
            )
        finally:
            facetrail_client.close()
        assert by_photo["status"] == "succeeded", by_photo
        images = {Path(m["image"]).name for m in by_photo["matches"]}
        assert images == {"obama1.jpg", "obama_and_biden.jpg"}
    finally:
        client.close()
        app.close()
