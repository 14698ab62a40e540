"""A slow URL inside a batch, and an in-process job whose process is killed.

A URL that never answers costs an item at most ``fetch_item_budget`` seconds of fetching over
all its attempts, then fails with ``fetch_timeout``. A job run without a broker whose process was
killed is shown as interrupted, with the command that resumes it, and that command finishes it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from facetrail.api import Facetrail
from facetrail.cli.main import main
from facetrail.db import session_scope
from facetrail.models import Job, JobItem
from facetrail.settings import Settings


class Tarpit:
    """A loopback HTTP server that accepts connections and never answers, until ``answer`` is
    set: then every request gets that body."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.answer: bytes | None = None
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, path: str = "/photo.jpg") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.answer is None:
                self.held.append(conn)  # read nothing, answer nothing
                continue
            conn.recv(65536)
            body = self.answer
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                + body
            )
            conn.close()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def tarpit() -> Iterator[Tarpit]:
    server = Tarpit()
    yield server
    server.close()


def test_a_slow_url_spends_one_budget_then_fails_with_fetch_timeout(
    tmp_path: Path, tarpit: Tarpit
) -> None:
    settings = Settings(
        home=tmp_path / "home",
        fetch_allow_networks="127.0.0.1/32",
        fetch_total_timeout=1.0,
        fetch_item_budget=2.5,
        task_max_retries=5,
    )
    report = Facetrail(settings).tag([tarpit.url()], ops=["labels"])
    (image,) = report["images"]
    assert image["status"] == "failed" and image["error_code"] == "fetch_timeout", image
    assert "fetch budget" in image["error"]
    with session_scope(settings) as session:
        item = session.scalars(select(JobItem)).one()
        # 1 s, 1 s, then the half second left: three attempts, not task_max_retries + 1.
        assert item.attempts == 3
        assert 2.5 <= item.fetch_seconds < 3.5


SCRIPT = """
import sys
from facetrail.api import Facetrail
Facetrail().tag([sys.argv[1]], ops=["labels"])
"""


def test_a_killed_in_process_job_shows_as_interrupted_and_resumes(
    cli: Settings,
    tarpit: Tarpit,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FACETRAIL_FETCH_ALLOW_NETWORKS", "127.0.0.1/32")
    env = {
        **os.environ,
        "FACETRAIL_HOME": str(cli.home),
        "FACETRAIL_FETCH_ALLOW_NETWORKS": "127.0.0.1/32",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    env.pop("FACETRAIL_BROKER_URL", None)
    env.pop("FACETRAIL_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, tarpit.url()], env=env)
    try:
        deadline = time.monotonic() + 60
        while not tarpit.held:  # the job is running and stuck on its fetch
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        with session_scope(cli) as session:
            job = session.scalars(select(Job)).one()
            assert (
                job.status.value == "running" and job.runner == f"{socket.gethostname()}:{proc.pid}"
            )
            job_id = job.id
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    assert main(["jobs"]) == 0
    listing = capsys.readouterr().out
    assert "interrupted" in listing and f"facetrail jobs {job_id} --resume" in listing, listing
    report = Facetrail(cli).job(job_id)
    assert (
        report["status"] == "interrupted"
        and report["resume"] == f"facetrail jobs {job_id} --resume"
    )

    tarpit.answer = b"not an image at all"
    assert main(["jobs", str(job_id), "--resume", "--json"]) == 0
    capsys.readouterr()
    report = Facetrail(cli).job(job_id)
    assert report["status"] == "failed" and "resume" not in report, report
    assert report["images"][0]["error_code"] == "invalid_image"
