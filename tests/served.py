"""A live server in a background thread for the tests, and a boto3 Rekognition client for it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import HTTPServer
from typing import Any, TypeVar

import boto3
from botocore.config import Config

ServerT = TypeVar("ServerT", bound=HTTPServer)


@contextmanager
def serving(srv: ServerT) -> Iterator[ServerT]:
    """``srv`` answering from a daemon thread until the block ends, then shut down and closed."""
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(10)


def url_of(srv: HTTPServer) -> str:
    host, port = srv.server_address[:2]
    return f"http://{host!s}:{port}"


def rekognition_client(endpoint: str, **config: Any) -> Any:
    """boto3's Rekognition client on ``endpoint``, with test credentials and no retries."""
    return boto3.client(
        "rekognition",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, **config),
    )
