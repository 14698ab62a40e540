"""Fan-out on a real Redis broker and PostgreSQL: in chunks, each item queued once however often
the submit or fan-out messages are delivered, and a resume that re-queues what never ran."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from facetrail.api import Facetrail
from facetrail.db import session_scope
from facetrail.errors import InvalidParameterError
from facetrail.migrate import upgrade
from facetrail.models import Job
from facetrail.settings import Settings
from facetrail.worker import tasks
from facetrail.worker.app import QUEUE, app, configure

pytestmark = [pytest.mark.services]


@pytest.fixture
def brokered(tmp_path: Path, postgres_url: str, redis_url: str) -> Iterator[Settings]:
    settings = Settings(
        home=tmp_path / "home",
        database_url=postgres_url,
        broker_url=redis_url,
        fan_out_chunk=4,
        max_job_images=20,
    )
    upgrade(settings)
    configure(app, settings)
    yield settings
    configure(app, Settings(home=tmp_path / "home"))


def tag_payload(request_id: str) -> dict[str, Any]:
    """A submit payload: a tag job of 10 images (three chunks of ``brokered``'s 4)."""
    return {
        "kind": "tag",
        "images": [f"https://example.com/{i}.jpg" for i in range(10)],
        "ops": ["labels"],
        "request_id": request_id,
    }


def take_messages(client: redis.Redis[bytes]) -> list[tuple[str, list[Any]]]:
    """Every task message waiting on the queue, removed: (task name, args)."""
    out = []
    while (raw := client.rpop(QUEUE)) is not None:
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        out.append((message["headers"]["task"], args))
    return out


def drain(
    client: redis.Redis[bytes], deliveries: int, taken: list[tuple[str, list[Any]]] | None = None
) -> Counter[int]:
    """Deliver every fan-out message ``deliveries`` times (a redelivery after a lost ack); count
    the run_item messages per item."""
    queued: Counter[int] = Counter()
    pending = [*(taken or []), *take_messages(client)]
    while pending:
        name, args = pending.pop(0)
        if name == "facetrail.run_item":
            queued[args[0]] += 1
        else:
            assert name == "facetrail.fan_out"
            for _ in range(deliveries):
                tasks.fan_out.apply(args=args)
        pending += take_messages(client)
    return queued


def test_submit_redelivered_queues_each_item_once_in_chunks(brokered: Settings) -> None:
    client = redis.Redis.from_url(brokered.broker_url)
    payload = tag_payload("big-1")
    try:
        job_id = tasks.submit.apply(args=[payload]).result
        first = take_messages(client)
        # One chunk of run_item tasks and the fan-out that continues after it, nothing more.
        assert [name for name, _ in first] == ["facetrail.run_item"] * 4 + ["facetrail.fan_out"]
        assert first[-1][1] == [job_id, 3]
        # The submit message delivered twice more, as a broker does after lost acks, and every
        # fan-out message three times: the same job, each item queued once.
        assert {tasks.submit.apply(args=[payload]).result for _ in range(2)} == {job_id}
        queued = drain(client, deliveries=3, taken=first)
        assert len(queued) == 10 and set(queued.values()) == {1}, queued

        # Resume re-queues the unfinished items (queued before, never run: a lost broker), and
        # a job an in-process runner had left becomes the workers'.
        with session_scope(brokered) as session:
            session.get_one(Job, job_id).runner = "elsewhere:1"
        assert tasks.run_job.apply(args=[job_id]).result == 4
        with session_scope(brokered) as session:
            assert session.get_one(Job, job_id).runner is None
        again = drain(client, deliveries=1)
        assert sorted(again) == sorted(queued) and set(again.values()) == {1}
    finally:
        client.close()


def test_images_per_job_limit_for_every_entry_point(brokered: Settings) -> None:
    ft = Facetrail(brokered.with_(broker_url=""))
    with pytest.raises(InvalidParameterError, match="21 images in one job; at most 20"):
        ft.tag([f"https://example.com/{i}.jpg" for i in range(21)], ops=["labels"])
    with pytest.raises(InvalidParameterError, match="at most 20"):
        ft.enroll("band", [(f"https://example.com/{i}.jpg", "x") for i in range(21)])


def test_requeue_lost_sends_again_what_the_broker_lost(brokered: Settings) -> None:
    """Messages taken off the queue and never delivered (a broker going down between its pop and
    the worker's record of it): their items, and the rest of a job whose fan-out message was
    among them, are sent again once ``requeue_after`` has passed, and only then, and once."""
    from sqlalchemy import select, update

    from facetrail.models import ItemStatus, JobItem
    from facetrail.models.base import utcnow
    from facetrail.worker.dispatch import requeue_lost

    settings = brokered.with_(requeue_after=600)
    configure(app, settings)
    client = redis.Redis.from_url(settings.broker_url)
    payload = tag_payload("lost-1")
    try:
        job_id = tasks.submit.apply(args=[payload]).result
        first = take_messages(client)  # the first chunk and its continuation, all lost
        assert [name for name, _ in first] == ["facetrail.run_item"] * 4 + ["facetrail.fan_out"]
        lost = [args[0] for name, args in first if name == "facetrail.run_item"]
        # One lost item started meanwhile (its message came back from the unacked set): it is
        # left to the broker's redelivery; another finished.
        with session_scope(settings) as session:
            session.execute(
                update(JobItem).where(JobItem.id == lost[0]).values(status=ItemStatus.RUNNING)
            )
            session.execute(
                update(JobItem).where(JobItem.id == lost[1]).values(status=ItemStatus.SUCCEEDED)
            )

        # Not yet: a message may still be on its way.
        assert requeue_lost(settings) == 0
        assert take_messages(client) == []

        later = utcnow() + timedelta(seconds=601)
        # The two never-started items, and the next chunk of the stalled fan-out with its
        # continuation.
        assert requeue_lost(settings, now=later) == 2 + 4
        again = take_messages(client)
        run = Counter(args[0] for name, args in again if name == "facetrail.run_item")
        assert set(run.values()) == {1}
        assert set(lost[2:]) <= set(run) and not {lost[0], lost[1]} & set(run)
        assert [args for name, args in again if name == "facetrail.fan_out"] == [[job_id, 7]]
        with session_scope(settings) as session:
            marks = dict(
                session.execute(
                    select(JobItem.id, JobItem.queued_at).where(JobItem.id.in_(lost[2:]))
                )
                .tuples()
                .all()
            )
        assert set(marks.values()) == {later}
        # Sent again once: nothing more at the same time, nor with requeue_after at 0 (off).
        assert requeue_lost(settings, now=later) == 0
        assert requeue_lost(settings.with_(requeue_after=0), now=later + timedelta(days=1)) == 0
        assert take_messages(client) == []
    finally:
        client.close()
