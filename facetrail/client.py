"""A small client for apps that enqueue facetrail jobs and wait for them.

It needs only ``celery`` and ``redis`` (no facetrail import), so it can be copied into any app:

    client = FacetrailClient("redis://localhost:6379/0")
    request_id = client.identify("band", ["/shared/photos/group.jpg"])
    report = client.wait(request_id, timeout=600)

Images are paths the workers can read, http(s) URLs, ``s3://`` keys, or ``bytes``: those travel
in the message (base64) and are kept in facetrail's image store, so the app needs no shared
filesystem. The report has the shape of ``facetrail jobs JOB --json``; the full record stays in
facetrail's database.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import redis
from celery import Celery

SUBMIT_TASK = "facetrail.submit"
SEARCH_PAST_TASK = "facetrail.search_past"
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
        images: Iterable[str | bytes],
        *,
        threshold: float | None = None,
        attributes: bool = False,
        request_id: str | None = None,
    ) -> str:
        payload: dict[str, Any] = {
            "kind": "identify",
            "collection": collection,
            "images": [_image(i) for i in images],
            "request_id": request_id,
        }
        if threshold is not None:
            payload["threshold"] = threshold
        if attributes:
            payload["attributes"] = True
        return self.submit(payload)

    def enroll(
        self,
        collection: str,
        entries: Sequence[tuple[str | bytes, str]],
        *,
        request_id: str | None = None,
    ) -> str:
        """``entries`` are (image, person id) pairs."""
        return self.submit(
            {
                "kind": "enroll",
                "collection": collection,
                "entries": [{"image": _image(i), "person": p} for i, p in entries],
                "request_id": request_id,
            }
        )

    def tag(
        self,
        images: Iterable[str | bytes],
        *,
        ops: Sequence[str] | None = None,
        request_id: str | None = None,
    ) -> str:
        """Labels, text, known people and moderation labels (``ops``: all when None)."""
        payload: dict[str, Any] = {
            "kind": "tag",
            "images": [_image(i) for i in images],
            "request_id": request_id,
        }
        if ops is not None:
            payload["ops"] = list(ops)
        return self.submit(payload)

    def search_past(
        self,
        collection: str,
        image: str | bytes | None = None,
        *,
        person: str | None = None,
        threshold: float | None = None,
        limit: int | None = None,
        request_id: str | None = None,
    ) -> str:
        """Search the collection's past faces with a photo's largest face or a person's enrolled
        faces (docs/past.md); ``wait`` returns the answer (``matches``)."""
        payload: dict[str, Any] = {
            "collection": collection,
            "request_id": request_id or uuid.uuid4().hex,
        }
        if image is not None:
            payload["image"] = _image(image)
        if person is not None:
            payload["person"] = person
        if threshold is not None:
            payload["threshold"] = threshold
        if limit is not None:
            payload["limit"] = limit
        if self.actor:
            payload["actor"] = self.actor
        self._celery.send_task(SEARCH_PAST_TASK, args=[payload], queue=self.queue)
        return str(payload["request_id"])

    def wait(self, request_id: str, *, timeout: float | None = None, poll: float = 0.5) -> Any:
        """Block until the job (or search) finishes; returns its report or answer (``status``
        rejected on bad input)."""
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
        # Not self._celery.close(): Celery's broker pools are kombu's, shared by every app in
        # the process that uses the same broker, and closing them would break those apps.


def _image(image: str | bytes) -> Any:
    """A payload image: a source string as is, bytes as ``{"data": "<base64>"}``."""
    if isinstance(image, bytes):
        return {"data": base64.b64encode(image).decode("ascii")}
    return str(image)
