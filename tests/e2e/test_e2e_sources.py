"""Every image source through every way in, run by a real worker.

Enroll, identify and tag jobs each take a local path, an http(s) URL, an ``s3://`` key and
uploaded bytes, from the CLI (a subprocess), the Python API and ``facetrail.submit`` (plain
Celery through FacetrailClient). One ``facetrail worker`` subprocess runs them all on PostgreSQL
and Redis. The worker has a home of its own and the image store is an S3 bucket (a moto server
over HTTP), so uploaded bytes reach it without any filesystem shared with the submitter; only
the worker may fetch from loopback URLs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from facetrail.api import Facetrail
from facetrail.client import FacetrailClient
from facetrail.db import session_scope
from facetrail.migrate import upgrade
from facetrail.services.catalog import list_people
from facetrail.settings import Settings
from tests.conftest import KNN, KNN_EXPECTED, REDIS_URL
from tests.procs import Worker, scratch_database
from tests.s3server import CREDENTIALS, S3Server, s3_process

__all__ = ["s3_process"]  # fixture

pytestmark = [pytest.mark.services, pytest.mark.e2e]

# One photo per person to enroll, and photos of those people to identify and tag.
ENROLL = [
    ("obama", "train/obama/obama.jpg"),
    ("biden", "train/biden/biden.jpg"),
    ("kit_harington", "train/kit_harington/john1.jpeg"),
    ("rose_leslie", "train/rose_leslie/img1.jpg"),
]
PHOTOS = [
    "test/obama1.jpg",
    "test/obama_and_biden.jpg",
    "test/johnsnow_test1.jpg",
    "test/kit_with_rose.jpg",
]
SCHEMES = ("path", "http", "s3", "bytes")
TIMEOUT = 300


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_folder(root: Path) -> Iterator[str]:
    """A plain HTTP server on loopback serving ``root``; its base URL."""
    handler = functools.partial(_Quiet, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass(frozen=True)
class Rig:
    settings: Settings  # the submitting side's
    env: dict[str, str]  # the CLI's environment
    http: str
    bucket: str

    def image(self, scheme: str, photo: str) -> str | bytes:
        """``photo`` (relative to knn_examples) as a source of ``scheme``."""
        if scheme == "path":
            return str(KNN / photo)
        if scheme == "http":
            return f"{self.http}/{photo}"
        if scheme == "s3":
            return f"s3://{self.bucket}/photos/{photo}"
        return (KNN / photo).read_bytes()


def schemes_for(turn: int) -> list[str]:
    """One scheme per image of a job, rotated so each entry point gives each photo another one."""
    return [SCHEMES[(i + turn) % len(SCHEMES)] for i in range(len(SCHEMES))]


def recorded(image: str | bytes) -> str:
    """The source a job records for ``image``: bytes become their upload:// reference."""
    if isinstance(image, bytes):
        return "upload://" + hashlib.sha256(image).hexdigest()
    return image


@pytest.fixture(scope="module")
def rig(
    s3_process: str, models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("sources")
    with pytest.MonkeyPatch.context() as mp, scratch_database() as database_url:
        for key, value in CREDENTIALS.items():  # moto accepts any credentials
            mp.setenv(key, value)
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        mp.delenv("AWS_PROFILE", raising=False)
        s3 = S3Server(s3_process)
        bucket = s3.bucket()
        client = s3.client()
        for photo in [p for _, p in ENROLL] + PHOTOS:
            client.put_object(Bucket=bucket, Key=f"photos/{photo}", Body=(KNN / photo).read_bytes())
        broker = redis.Redis.from_url(REDIS_URL)
        broker.flushdb()
        broker.close()
        shared = {
            "FACETRAIL_DATABASE_URL": database_url,
            "FACETRAIL_BROKER_URL": REDIS_URL,
            "FACETRAIL_MODELS_DIR": str(models_dir),
            "FACETRAIL_IMAGE_STORE": f"s3://{bucket}/store",
            "FACETRAIL_S3_ENDPOINT_URL": s3.endpoint,
            "FACETRAIL_AWS_REGION": "us-east-1",
        }
        settings = Settings(
            home=tmp / "app",
            models_dir=models_dir,
            database_url=database_url,
            broker_url=REDIS_URL,
            image_store=f"s3://{bucket}/store",
            s3_endpoint_url=s3.endpoint,
            aws_region="us-east-1",
        )
        upgrade(settings)
        worker = Worker(
            settings,
            tmp / "worker.log",
            # shared's keys are all FACETRAIL_* variables, none of Worker's named parameters.
            **shared,  # type: ignore[arg-type]
            FACETRAIL_HOME=str(tmp / "worker"),  # nothing on disk shared with the submitters
            FACETRAIL_FETCH_ALLOW_NETWORKS="127.0.0.0/8",  # the photo server is on loopback
            # Other apps' payloads name local files only under the worker's image roots.
            FACETRAIL_IMAGE_ROOTS=str(KNN),
        )
        try:
            with serve_folder(KNN) as http:
                yield Rig(settings, {**shared, "FACETRAIL_HOME": str(tmp / "cli")}, http, bucket)
        finally:
            worker.stop()
            assert worker.proc.returncode in (0, -signal.SIGTERM), worker.log_path.read_text(
                errors="replace"
            )


def check_enrolled(report: dict[str, Any], images: Sequence[str | bytes]) -> None:
    assert report["status"] == "succeeded", report
    assert [i["image"] for i in report["images"]] == [recorded(i) for i in images]
    for item, (person, _) in zip(report["images"], ENROLL, strict=True):
        assert (item["status"], item["person"]) == ("succeeded", person), item


def check_people(rig: Rig, collection: str) -> None:
    with session_scope(rig.settings) as session:
        people = {p["external_id"]: p["faces"] for p in list_people(session, collection)}
    assert people == {person: 1 for person, _ in ENROLL}


def check_identified(report: dict[str, Any], images: Sequence[str | bytes]) -> None:
    assert report["status"] == "succeeded", report
    assert [i["image"] for i in report["images"]] == [recorded(i) for i in images]
    for item, photo in zip(report["images"], PHOTOS, strict=True):
        assert item["status"] == "succeeded", item
        named = {f["person"] for f in item["faces"] if f["person"]}
        assert named == KNN_EXPECTED[Path(photo).name], (photo, item)


def check_tagged(report: dict[str, Any], images: Sequence[str | bytes]) -> None:
    assert report["status"] == "succeeded", report
    assert [i["image"] for i in report["images"]] == [recorded(i) for i in images]
    for item in report["images"]:
        assert item["status"] == "succeeded", item
        assert "Person" in {label["Name"] for label in item["results"]["labels"]}, item


def test_the_cli(rig: Rig) -> None:
    env = {**os.environ, **rig.env}

    def cli(*args: str, stdin: bytes | None) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "facetrail.cli.main", *args, "--json"],
            env=env,
            input=stdin or b"",
            capture_output=True,
            timeout=TIMEOUT,
        )
        assert out.returncode == 0, out.stderr.decode(errors="replace")
        report: dict[str, Any] = json.loads(out.stdout)
        return report

    def command(images: list[str | bytes]) -> tuple[list[str], bytes | None]:
        """The images as arguments; bytes are read from stdin (``-``)."""
        data = [i for i in images if isinstance(i, bytes)]
        return [i if isinstance(i, str) else "-" for i in images], data[0] if data else None

    enrolled = [rig.image(s, p) for s, (_, p) in zip(schemes_for(0), ENROLL, strict=True)]
    reports = []
    for image, (person, _) in zip(enrolled, ENROLL, strict=True):
        args, stdin = command([image])
        reports.append(cli("enroll", *args, "--person", person, "-c", "cli", stdin=stdin))
    merged = {"status": "succeeded", "images": [r["images"][0] for r in reports]}
    assert all(r["status"] == "succeeded" for r in reports), reports
    check_enrolled(merged, enrolled)
    check_people(rig, "cli")

    photos = [rig.image(s, p) for s, p in zip(schemes_for(0), PHOTOS, strict=True)]
    args, stdin = command(photos)
    check_identified(cli("identify", *args, "-c", "cli", stdin=stdin), photos)
    check_tagged(cli("tag", *args, "--ops", "labels", stdin=stdin), photos)


def test_the_python_api(rig: Rig) -> None:
    ft = Facetrail(rig.settings)
    enrolled = [rig.image(s, p) for s, (_, p) in zip(schemes_for(1), ENROLL, strict=True)]
    pairs = [(image, person) for image, (person, _) in zip(enrolled, ENROLL, strict=True)]
    job = ft.enroll("api", pairs, wait=False)
    assert job["status"] in ("pending", "running")  # it went to the worker
    check_enrolled(ft.wait(job["job_id"], timeout=TIMEOUT), enrolled)
    check_people(rig, "api")

    photos = [rig.image(s, p) for s, p in zip(schemes_for(1), PHOTOS, strict=True)]
    identified = ft.identify("api", photos, wait=False)
    tagged = ft.tag(photos, ops=["labels"], wait=False)
    check_identified(ft.wait(identified["job_id"], timeout=TIMEOUT), photos)
    check_tagged(ft.wait(tagged["job_id"], timeout=TIMEOUT), photos)


def test_facetrail_submit(rig: Rig) -> None:
    client = FacetrailClient(REDIS_URL, actor="photo-app")
    try:
        enrolled = [rig.image(s, p) for s, (_, p) in zip(schemes_for(2), ENROLL, strict=True)]
        pairs = [(image, person) for image, (person, _) in zip(enrolled, ENROLL, strict=True)]
        check_enrolled(client.wait(client.enroll("app", pairs), timeout=TIMEOUT), enrolled)
        check_people(rig, "app")

        photos = [rig.image(s, p) for s, p in zip(schemes_for(2), PHOTOS, strict=True)]
        identified = client.identify("app", photos)
        tagged = client.tag(photos, ops=["labels"])
        check_identified(client.wait(identified, timeout=TIMEOUT), photos)
        check_tagged(client.wait(tagged, timeout=TIMEOUT), photos)
    finally:
        client.close()
