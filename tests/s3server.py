"""A real S3-compatible HTTP server for tests: moto's server in a subprocess on 127.0.0.1.

boto3 reaches it over HTTP exactly as it reaches AWS S3 or MinIO, through
``FACETRAIL_S3_ENDPOINT_URL``. Each test gets fresh buckets (``bucket`` makes a uniquely named one).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from facetrail.settings import Settings

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "facetrail-test",
    "AWS_SECRET_ACCESS_KEY": "facetrail-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def settings(self, **overrides: Any) -> Settings:
        return Settings(s3_endpoint_url=self.endpoint, aws_region="us-east-1", **overrides)

    def client(self) -> Any:
        from facetrail.images.s3 import s3_client

        return s3_client(self.settings())

    def bucket(self) -> str:
        name = f"facetrail-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def s3_process() -> Iterator[str]:
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def s3_server(s3_process: str, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The server, with boto3 given test credentials and no user AWS configuration."""
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return S3Server(s3_process)
