"""Unknown faces through a real worker: identify jobs cluster their unknown faces there, and
naming a cluster enrolls its faces, re-runs their jobs and reports the newly named faces."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from facetrail.api import Facetrail
from facetrail.client import FacetrailClient
from facetrail.db import session_scope
from facetrail.services import catalog
from facetrail.settings import Settings
from tests.conftest import DATA
from tests.procs import Worker

pytestmark = [pytest.mark.services, pytest.mark.e2e]

DEEPFACE = DATA / "deepface" / "tests" / "unit" / "dataset"
# deepface's identity cluster A (identities.csv): one person in four photos, and a stranger.
THEIRS = ["img1.jpg", "img2.jpg", "img4.jpg", "img5.jpg"]
STRANGER = "img3.jpg"


@pytest.fixture
def served(tmp_path: Path, service_settings: Settings) -> Iterator[Settings]:
    with session_scope(service_settings) as session:
        catalog.create_collection(session, service_settings, "band")
    worker = Worker(service_settings, tmp_path / "worker.log")
    yield service_settings
    worker.stop()


def wait_for(check: object, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def test_naming_a_cluster_enrolls_reruns_and_reports_through_a_worker(served: Settings) -> None:
    ft = Facetrail(served.with_(actor="tester"))
    first = ft.identify("band", [DEEPFACE / n for n in THEIRS[:2]], wait=False)
    second = ft.identify("band", [DEEPFACE / n for n in [*THEIRS[2:], STRANGER]], wait=False)
    for job in (first, second):
        assert ft.wait(job["job_id"], timeout=300)["status"] == "succeeded"
    # The worker clusters each job's unknown faces once the job has finished.
    wait_for(lambda: sum(c["faces"] for c in ft.unknowns("band")["clusters"]) >= 4)
    (cluster,) = ft.unknowns("band")["clusters"]
    assert cluster["faces"] == 4 and cluster["jobs"] == 2
    shown = ft.unknown("band", cluster["cluster"])
    assert sorted(Path(m["image"]).name for m in shown["members"]) == THEIRS

    named = ft.name_unknown("band", cluster["cluster"], "alice", timeout=300)

    assert named["status"] == "named" and named["enrolled"] == 4, named
    assert named["left_out"] == [] and named["failed"] == []
    # Both jobs were re-run; every face of the cluster is now named alice, nothing else moved.
    assert sorted(r["rerun_of"] for r in named["reruns"]) == sorted(
        [first["job_id"], second["job_id"]]
    )
    changes = [c for r in named["reruns"] for c in r["changes"]]
    assert sorted(Path(c["image"]).name for c in changes) == THEIRS
    assert {(c["change"], c["before"], c["after"]) for c in changes} == {("named", None, "alice")}
    assert named["newly_named"] == 4
    for report in named["reruns"]:
        job = ft.job(report["job_id"])
        assert job["status"] == "succeeded"
        for image in job["images"]:
            people = {f["person"] for f in image["faces"]}
            assert people == ({None} if Path(image["image"]).name == STRANGER else {"alice"})
    listing = ft.unknowns("band")
    assert [(c["cluster"], c["status"], c["person"]) for c in listing["clusters"]] == [
        (cluster["cluster"], "named", "alice")
    ]
    events = ft.audit_log("band")
    actions = [e["action"] for e in events]
    for action in ("unknowns_cluster", "unknowns_name", "enroll", "rerun", "unknowns_named"):
        assert action in actions, actions
    # The worker made the re-runs, on behalf of whoever named the cluster.
    by = {e["action"]: e["actor"] for e in events if e["action"] != "unknowns_cluster"}
    assert by["unknowns_named"] == by["rerun"] == by["unknowns_name"] == "tester"

    # The same through the payload tasks, as another app would: the answer comes on Redis.
    client = FacetrailClient(served.broker_url, actor="photo-app")
    try:
        listed = client.wait(
            client.send("facetrail.unknowns.list", {"collection": "band"}), timeout=120
        )
        refused = client.wait(
            client.send(
                "facetrail.unknowns.merge", {"collection": "band", "source": "x", "target": 1}
            ),
            timeout=120,
        )
    finally:
        client.close()
    assert listed["status"] == "done" and listed["clusters"] == listing["clusters"]
    assert refused["status"] == "rejected" and "source" in refused["error"]
