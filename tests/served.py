"""A live server in a background thread for the tests, a boto3 Rekognition client for it, and a
loopback server of photos."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, TypeVar

import boto3
from botocore.config import Config


class Server(Protocol):
    """What ``serving`` needs of a server: the standard library's ``HTTPServer`` and serve's
    ``RekognitionHTTPServer`` both have it."""

    @property
    def server_address(self) -> tuple[Any, ...]: ...

    def serve_forever(self) -> None: ...

    def shutdown(self) -> None: ...

    def server_close(self) -> None: ...


ServerT = TypeVar("ServerT", bound=Server)


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


def url_of(srv: Server) -> str:
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


@contextmanager
def photo_server(files: Mapping[str, bytes], latency: float = 0.0) -> Iterator[PhotoLog]:
    """A loopback HTTP server answering each path of ``files`` with its bytes and any other with
    404, every response held back ``latency`` seconds (a far server's round trips); what it was
    asked for is in the yielded log."""
    log = PhotoLog()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            log.first.setdefault(self.path, datetime.now(UTC))
            log.requests.append(self.path)
            body = files.get(self.path)
            time.sleep(latency)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg" if self.path.endswith("jpg") else "")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as srv:
        log.base = url_of(srv)
        yield log


@dataclass
class PhotoLog:
    """What ``photo_server`` was asked for: every path in order, and when each was first."""

    base: str = ""
    requests: list[str] = field(default_factory=list)
    first: dict[str, datetime] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> int:
        return self.requests.count(path)
