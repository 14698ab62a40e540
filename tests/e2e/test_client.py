"""Other apps enqueue with plain Celery (FacetrailClient) and wait for the report."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from facetrail.api import Facetrail
from facetrail.client import FacetrailClient
from facetrail.db import session_scope
from facetrail.migrate import upgrade
from facetrail.models import Job
from facetrail.settings import Settings
from tests.conftest import KNN, KNN_EXPECTED, knn_test_images
from tests.procs import Worker

pytestmark = [pytest.mark.services, pytest.mark.e2e]


@pytest.fixture
def served(
    tmp_path: Path, models_dir: Path, postgres_url: str, redis_url: str
) -> Iterator[Settings]:
    settings = Settings(home=tmp_path / "home", models_dir=models_dir, database_url=postgres_url)
    upgrade(settings)
    Facetrail(settings).enroll("band", KNN / "train")
    settings = settings.with_(broker_url=redis_url)
    # The app names photos on a volume the worker shares, configured as an image root.
    worker = Worker(settings, tmp_path / "worker.log", FACETRAIL_IMAGE_ROOTS=str(KNN))
    yield settings
    worker.stop()


def test_enqueue_and_wait_without_facetrail_imports(served: Settings) -> None:
    client = FacetrailClient(served.broker_url, actor="photo-app")
    try:
        enrolled = client.wait(
            client.enroll("band", [(str(KNN / "test" / "obama1.jpg"), "obama")]), timeout=300
        )
        request_id = client.identify("band", [str(p) for p in knn_test_images()])
        report = client.wait(request_id, timeout=300)
        # Sending the same request again (a retrying app) makes no second job.
        client.identify("band", [str(p) for p in knn_test_images()], request_id=request_id)
        rejected = client.wait(client.identify("no-such-collection", ["x.jpg"]), timeout=120)
        # Bytes travel in the message: the app needs no filesystem shared with the workers.
        photo = KNN / "test" / "obama1.jpg"
        uploaded = client.wait(client.identify("band", [photo.read_bytes()]), timeout=300)
        malformed = client.wait(client.submit({"kind": "identify", "images": "x"}), timeout=120)
    finally:
        client.close()
    assert report["request_id"] == request_id and report["status"] == "succeeded"
    for image in report["images"]:
        named = {f["person"] for f in image["faces"] if f["person"]}
        assert named == KNN_EXPECTED[Path(image["image"]).name]
    assert enrolled["status"] == "succeeded"
    # The newest events are the worker's clustering of unknown faces (docs/unknowns.md).
    events = Facetrail(served).audit_log("band")
    assert next(e for e in events if e["action"] == "enroll")["actor"] == "photo-app"
    assert rejected["status"] == "rejected"
    assert "does not exist" in rejected["error"]
    (image,) = uploaded["images"]
    assert image["image"].startswith("upload://") and image["status"] == "succeeded"
    assert {f["person"] for f in image["faces"]} == {"obama"}
    assert malformed["status"] == "rejected" and "collection: Field required" in malformed["error"]
    with session_scope(served) as session:
        assert session.scalar(select(func.count()).where(Job.request_id == request_id)) == 1
