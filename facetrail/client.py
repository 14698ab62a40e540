"""A small client for apps that enqueue facetrail jobs and wait for them.

It needs only ``celery`` and ``redis`` (no facetrail import), so it can be copied into any app:

    client = FacetrailClient("redis://localhost:6379/0")
    request_id = client.identify("band", ["/shared/photos/group.jpg"])
    report = client.wait(request_id, timeout=600)

Image paths must be readable by the workers. The report has the shape of
``facetrail jobs JOB --json``; the full record stays in facetrail's database.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import redis
from celery import Celery

SUBMIT_TASK = "facetrail.submit"
QUEUE = "facetrail"


class FacetrailClient:
    def __init__(self, broker_url: str, *, queue: str = QUEUE, actor: str | None = None) -> None:
        self.queue = queue
        self.actor = actor  # recorded in facetrail's audit log as who asked
        self._celery = Celery("facetrail-client", broker=broker_url)
        self._redis = redis.Redis.from_url(broker_url)

    def submit(self, payload: dict[str, Any]) -> str:
        """Send a raw payload (see docs/tasks.md); returns its request id."""
        payload = {**payload, "request_id": payload.get("request_id") or uuid.uuid4().hex}
        if self.actor and "actor" not in payload:
            payload["actor"] = self.actor
        self._celery.send_task(SUBMIT_TASK, args=[payload], queue=self.queue)
        return str(payload["request_id"])

    def identify(
        self,
        collection: str,
        images: Iterable[str],
        *,
        threshold: float | None = None,
        request_id: str | None = None,
    ) -> str:
        payload: dict[str, Any] = {
            "kind": "identify",
            "collection": collection,
            "images": [str(i) for i in images],
            "request_id": request_id,
        }
        if threshold is not None:
            payload["threshold"] = threshold
        return self.submit(payload)

    def enroll(
        self,
        collection: str,
        entries: Sequence[tuple[str, str]],
        *,
        request_id: str | None = None,
    ) -> str:
        """``entries`` are (image path, person id) pairs."""
        return self.submit(
            {
                "kind": "enroll",
                "collection": collection,
                "entries": [{"image": str(i), "person": p} for i, p in entries],
                "request_id": request_id,
            }
        )

    def wait(self, request_id: str, *, timeout: float | None = None, poll: float = 0.5) -> Any:
        """Block until the job finishes; returns its report (``status`` rejected on bad input)."""
        key = f"facetrail:done:{request_id}"
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            raw = self._redis.lindex(key, 0)
            if raw is not None:
                return json.loads(raw)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"request {request_id} not finished after {timeout}s")
            time.sleep(poll)

    def close(self) -> None:
        self._redis.close()
        self._celery.close()
