"""``facetrail.submit`` payloads: validated per kind, rejected on their request id, every kind
(tag included) accepted, images as sources or uploaded bytes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from facetrail.api import Facetrail
from facetrail.cli.main import main
from facetrail.db import session_scope
from facetrail.errors import InvalidParameterError
from facetrail.jobs import KINDS
from facetrail.jobs.submit import parse_payload
from facetrail.models import Job
from facetrail.settings import Settings
from facetrail.worker import tasks
from facetrail.worker.app import app, configure
from facetrail.worker.notify import done_key
from tests.conftest import DATA, KNN

NON_FACES = DATA / "dlib" / "dlib" / "test" / "ffmpeg_data"


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


# (payload without request_id, a fragment the rejection must say)
MALFORMED: list[tuple[dict[str, Any], str]] = [
    # A string where a list belongs is refused, not split into one image per character.
    ({"kind": "identify", "collection": "band", "images": "/etc/passwd"}, "images: Input should"),
    (
        {"kind": "identify", "collection": "band", "images": ["a.jpg"], "threshold": float("nan")},
        "threshold: Input should be a finite number",
    ),
    ({"kind": "identify", "collection": "band", "images": ["a\x00.jpg"]}, "NUL"),
    ({"kind": "identify", "collection": "band", "images": ["a\udcff.jpg"]}, "unicode string"),
    ({"kind": "identify", "collection": "band", "images": [7]}, "images.0.source"),
    ({"kind": "identify", "collection": "band", "images": [{"data": "@@"}]}, "base64"),
    ({"kind": "identify", "collection": "band", "images": [], "threshold": 101}, "threshold"),
    ({"kind": "identify", "collection": "band", "imgs": ["a.jpg"]}, "imgs: Extra inputs"),
    ({"kind": "identify", "images": ["a.jpg"]}, "collection: Field required"),
    ({"kind": "identify", "collection": "no such", "images": []}, "collection: Value error"),
    ({"kind": "enroll", "collection": "band", "entries": [{"image": "a.jpg"}]}, "person"),
    ({"kind": "tag", "images": ["a.jpg"], "ops": "labels"}, "ops: Input should be a valid list"),
    ({"kind": "tag", "images": ["a.jpg"], "ops": ["faces"]}, "unknown tagging operation"),
    ({"kind": "rerun", "job_id": "1"}, "job_id"),
    ({"kind": "reindex"}, "collection: Field required"),
    ({"kind": "tag", "images": ["a.jpg"] * 4}, "at most 3 (FACETRAIL_MAX_JOB_IMAGES)"),
    ({"kind": "launch"}, "unknown job kind"),
    ({"images": ["a.jpg"]}, "unknown job kind"),
    # Well formed, but naming a collection that does not exist.
    ({"kind": "identify", "collection": "nope", "images": ["a.jpg"]}, "does not exist"),
]


def test_payload_schemas_cover_every_kind() -> None:
    assert set(KINDS) == {"enroll", "identify", "tag", "reindex", "rerun"}
    with pytest.raises(InvalidParameterError, match="at most 64 characters"):
        parse_payload({"kind": "tag", "images": [], "request_id": "r" * 65})
    with pytest.raises(InvalidParameterError, match="JSON object"):
        parse_payload(["identify"])
    request = parse_payload(
        {"kind": "tag", "images": ["a.jpg", {"data": "aGk=", "name": "hi.jpg"}]}
    )
    assert request.model_dump()["images"] == ["a.jpg", {"data": b"hi", "name": "hi.jpg"}]


@pytest.fixture
def brokered(settings: Settings, redis_url: str) -> Iterator[Settings]:
    """The submit task in this process, answering on the real Redis broker."""
    Facetrail(settings)  # the schema
    brokered = settings.with_(broker_url=redis_url, max_job_images=3)
    configure(app, brokered)
    yield brokered
    configure(app, settings)


def test_malformed_payloads_are_answered_on_their_request_id_and_not_retried(
    brokered: Settings,
) -> None:
    client = redis.Redis.from_url(brokered.broker_url)
    long_id = "x" * 65  # too long to be stored, still answered where its sender waits
    try:
        for i, (payload, says) in enumerate([*MALFORMED, ({"kind": "tag"}, "images")]):
            request_id = long_id if i == len(MALFORMED) else f"bad-{i}"
            result = tasks.submit.apply(args=[{**payload, "request_id": request_id}])
            assert result.successful() and result.result == 0, (payload, result.result)
            answers = [json.loads(raw) for raw in client.lrange(done_key(request_id), 0, -1)]
            assert len(answers) == 1, payload
            assert answers[0]["status"] == "rejected"
            assert says in answers[0]["error"], (payload, answers[0]["error"])
        # Not a JSON object at all: nothing to answer on, and no crash either.
        assert tasks.submit.apply(args=[["identify", "x.jpg"]]).result == 0
    finally:
        client.close()
    with session_scope(brokered) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_identify_with_uploaded_bytes(settings: Settings) -> None:
    ft = Facetrail(settings)
    # Enrolled from bytes, as an app without a shared filesystem would.
    photos = sorted((KNN / "train" / "obama").iterdir())
    enrolled = ft.enroll("band", [(photos[0].read_bytes(), "obama")])
    assert enrolled["status"] == "succeeded", enrolled
    assert enrolled["images"][0]["image"].startswith("upload://")

    photo = KNN / "test" / "obama1.jpg"
    report = ft.identify("band", [photo.read_bytes(), str(photo)])
    uploaded, by_path = report["images"]
    assert uploaded["image"].startswith("upload://") and by_path["image"] == str(photo)
    for image in (uploaded, by_path):
        assert image["status"] == "succeeded"
        assert [f["person"] for f in image["faces"]] == ["obama"]

    # The same through a facetrail.submit payload, with the image's name kept.
    configure(app, settings)
    job_id = tasks.submit.apply(
        args=[
            {
                "kind": "identify",
                "collection": "band",
                "images": [{"data": b64(photo), "name": "obama1.jpg"}],
                "request_id": "upload-1",
            }
        ]
    ).result
    report = ft.job(job_id)
    assert report["parameters"]["image_names"] == {"0": "obama1.jpg"}
    assert report["images"][0]["image"] == uploaded["image"]  # content-addressed
    assert [f["person"] for f in report["images"][0]["faces"]] == ["obama"]


def test_tag_job_through_submit(settings: Settings) -> None:
    pytest.importorskip("onnxruntime", reason="needs the tagging extra")
    settings = settings.with_(image_roots=str(NON_FACES))  # a payload's files: under a root
    Facetrail(settings)
    configure(app, settings)
    payload = {
        "kind": "tag",
        "images": [str(NON_FACES / "dog.jpg"), {"data": b64(NON_FACES / "giraffe.jpg")}],
        "ops": ["labels"],
        "request_id": "tag-1",
    }
    job_id = tasks.submit.apply(args=[payload]).result
    assert tasks.submit.apply(args=[payload]).result == job_id  # same request, same job
    report = Facetrail(settings).job(job_id)
    assert report["kind"] == "tag" and report["status"] == "succeeded", report
    dog, giraffe = report["images"]
    assert giraffe["image"].startswith("upload://")
    assert set(dog["results"]) == set(giraffe["results"]) == {"labels"}
    assert "Dog" in {label["Name"] for label in dog["results"]["labels"]}
    assert "Giraffe" in {label["Name"] for label in giraffe["results"]["labels"]}


def test_cli_upload_sends_local_files_as_bytes(
    cli: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["enroll", str(KNN / "train"), "-c", "band", "--upload"]) == 0
    capsys.readouterr()
    photo = KNN / "test" / "kit_with_rose.jpg"
    out = tmp_path / "annotated.jpg"
    argv = ["identify", str(photo), "-c", "band", "--upload", "--json", "--annotate", str(out)]
    assert main(argv) == 0
    (image,) = json.loads(capsys.readouterr().out)["images"]
    assert out.stat().st_size > 0  # drawn on the uploaded copy
    assert image["image"].startswith("upload://")
    assert {f["person"] for f in image["faces"]} == {"kit_harington", "rose_leslie"}
