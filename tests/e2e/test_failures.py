"""Failure tests on real services: killed workers, a restarted broker, messages the broker
lost, racing workers, and a database that goes away for a while. Each batch must end with
exactly one result per image."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from facetrail.api import Facetrail
from facetrail.db import session_scope
from facetrail.images.scan import EnrollEntry
from facetrail.migrate import upgrade
from facetrail.models import Face, FaceResult, ItemStatus, Job, JobItem, Person
from facetrail.settings import Settings
from facetrail.worker.app import QUEUE
from tests.conftest import DATA, KNN
from tests.procs import PrivateRedis, TcpProxy, Worker

pytestmark = [pytest.mark.services, pytest.mark.e2e]

FR = DATA / "face_recognition"
PHOTOS = sorted(
    [p for p in (FR / "examples").iterdir() if p.suffix in {".jpg", ".png"}]
    + list((KNN / "test").iterdir())
    + list((FR / "tests" / "test_images").iterdir())
)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def base(tmp_path: Path, models_dir: Path, postgres_url: str) -> Settings:
    """PostgreSQL, migrated, with the knn_examples people enrolled (in-process)."""
    settings = Settings(home=tmp_path / "home", models_dir=models_dir, database_url=postgres_url)
    upgrade(settings)
    Facetrail(settings).enroll("band", KNN / "train")
    return settings


def batch(n: int) -> list[str]:
    return [str(PHOTOS[i % len(PHOTOS)]) for i in range(n)]


def done_items(settings: Settings, job_id: int) -> int:
    with session_scope(settings) as session:
        return (
            session.scalar(
                select(func.count()).where(
                    JobItem.job_id == job_id, JobItem.status == ItemStatus.SUCCEEDED
                )
            )
            or 0
        )


def wait_until(condition: object, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.3)
    raise TimeoutError("condition not reached")


def wait_for_job(ft: Facetrail, job_id: int, server: PrivateRedis, timeout: float) -> None:
    """``ft.wait``; a job that does not finish is reported with the messages the broker lost."""
    try:
        ft.wait(job_id, timeout=timeout)
    except TimeoutError as exc:
        lost = [json.loads(base64.b64decode(m["body"]))[0] for m in server.lost_messages(QUEUE)]
        raise TimeoutError(f"{exc}; popped, never recorded as unacknowledged: {lost}") from exc


def assert_one_result_per_image(settings: Settings, job_id: int, n: int) -> None:
    with session_scope(settings) as session:
        job = session.get_one(Job, job_id)
        assert (job.status.value, job.succeeded_items, job.failed_items) == ("succeeded", n, 0)
        items = session.scalars(select(JobItem).where(JobItem.job_id == job_id)).all()
        assert sorted(i.position for i in items) == list(range(n))
        faces_by_source: dict[str, int] = {}
        for item in items:
            assert item.status == ItemStatus.SUCCEEDED
            indexes = [f.face_index for f in item.faces]
            assert indexes == list(range(len(indexes))), "duplicated or missing face rows"
            # The same photo always gives the same faces, however often its task ran.
            assert faces_by_source.setdefault(item.source, len(indexes)) == len(indexes)
        total = session.scalar(
            select(func.count())
            .select_from(FaceResult)
            .join(JobItem)
            .where(JobItem.job_id == job_id)
        )
        assert total == sum(faces_by_source[i.source] for i in items)


def test_worker_killed_mid_batch(
    base: Settings, redis_server: PrivateRedis, tmp_path: Path
) -> None:
    # A worker killed between taking a message off the queue and recording it as unacknowledged
    # loses it (seen here once: 200 pops, 199 records); the next worker sends that item again
    # after requeue_after.
    settings = base.with_(broker_url=redis_server.url, visibility_timeout=5, requeue_after=90)
    ft = Facetrail(settings)
    job_id = ft.identify("band", batch(200), wait=False)["job_id"]
    first = Worker(settings, tmp_path / "w1.log")
    wait_until(lambda: done_items(settings, job_id) >= 40)
    first.kill()
    killed_at = done_items(settings, job_id)
    assert killed_at < 200
    second = Worker(settings, tmp_path / "w2.log")
    try:
        wait_for_job(ft, job_id, redis_server, timeout=400)
    finally:
        second.stop()
    assert_one_result_per_image(settings, job_id, 200)


def test_broker_restarted_mid_batch(
    base: Settings, redis_server: PrivateRedis, tmp_path: Path
) -> None:
    # A restart can lose a message the worker was taking (Redis's transport pops it before it
    # records it as unacknowledged): the worker sends such an item again after requeue_after.
    settings = base.with_(broker_url=redis_server.url, visibility_timeout=5, requeue_after=90)
    ft = Facetrail(settings)
    job_id = ft.identify("band", batch(120), wait=False)["job_id"]
    worker = Worker(settings, tmp_path / "w.log")
    try:
        wait_until(lambda: done_items(settings, job_id) >= 10)
        redis_server.restart(down_for=3)
        assert done_items(settings, job_id) < 120
        wait_for_job(ft, job_id, redis_server, timeout=400)
    finally:
        worker.stop()
    assert_one_result_per_image(settings, job_id, 120)


def test_lost_messages_are_sent_again_once(
    base: Settings, redis_server: PrivateRedis, tmp_path: Path
) -> None:
    """Two items' messages taken off the queue and dropped, as Redis does with one it popped
    and could not hand over: a worker sends them again after requeue_after, and each runs once."""
    settings = base.with_(broker_url=redis_server.url, visibility_timeout=5, requeue_after=8)
    ft = Facetrail(settings)
    job_id = ft.identify("band", batch(8), wait=False)["job_id"]
    client = redis.Redis.from_url(redis_server.url)
    try:
        lost = [json.loads(client.rpop(QUEUE) or b"{}") for _ in range(2)]
    finally:
        client.close()
    lost_ids = [json.loads(base64.b64decode(m["body"]))[0][0] for m in lost]
    assert [m["headers"]["task"] for m in lost] == ["facetrail.run_item"] * 2
    # What the append-only file tells of them: popped, never recorded (the failure report).
    assert [m["properties"]["delivery_tag"] for m in redis_server.lost_messages(QUEUE)] == [
        m["properties"]["delivery_tag"] for m in lost
    ]
    worker = Worker(settings, tmp_path / "w.log")
    try:
        ft.wait(job_id, timeout=300)
    finally:
        worker.stop()
    assert_one_result_per_image(settings, job_id, 8)
    with session_scope(settings) as session:
        attempts = session.scalars(select(JobItem.attempts).where(JobItem.id.in_(lost_ids)))
        assert list(attempts) == [1, 1]
    assert "sent again" in (tmp_path / "w.log").read_text(errors="replace")


def test_two_workers_enrolling_the_same_new_person(
    base: Settings, redis_server: PrivateRedis, tmp_path: Path
) -> None:
    settings = base.with_(broker_url=redis_server.url)
    photos = [
        FR / "examples" / "obama.jpg",
        FR / "examples" / "obama2.jpg",
        FR / "examples" / "obama-480p.jpg",
        FR / "examples" / "obama-720p.jpg",
        FR / "examples" / "obama_small.jpg",
        FR / "tests" / "test_images" / "obama3.jpg",
        KNN / "test" / "obama1.jpg",
    ]
    workers = [Worker(settings, tmp_path / f"w{i}.log") for i in range(2)]
    try:
        report = Facetrail(settings).enroll(
            "band", [EnrollEntry(str(p), "barack") for p in photos], wait=False
        )
        report = Facetrail(settings).wait(report["job_id"], timeout=300)
    finally:
        for w in workers:
            w.stop()
    assert report["status"] == "succeeded", report
    with session_scope(settings) as session:
        people = session.scalars(select(Person).where(Person.external_id == "barack")).all()
        assert len(people) == 1
        faces = session.scalar(select(func.count()).where(Face.person_id == people[0].id))
        assert faces == len(photos)


def test_database_briefly_unreachable(
    base: Settings, redis_server: PrivateRedis, tmp_path: Path
) -> None:
    settings = base.with_(broker_url=redis_server.url)
    url = make_url(settings.database_url)
    proxy = TcpProxy(url.port or 5432)
    proxy.start()
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    ft = Facetrail(settings)
    job_id = ft.identify("band", batch(120), wait=False)["job_id"]
    worker = Worker(settings.with_(database_url=through_proxy), tmp_path / "w.log")
    try:
        wait_until(lambda: done_items(settings, job_id) >= 8)
        proxy.cut()
        time.sleep(6)
        assert done_items(settings, job_id) < 120
        proxy.restore()
        ft.wait(job_id, timeout=400)
    finally:
        worker.stop()
        proxy.cut()
    assert_one_result_per_image(settings, job_id, 120)
    assert "retry" in (tmp_path / "w.log").read_text(errors="replace").lower()
