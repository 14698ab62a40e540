"""Run ``facetrail serve`` for a test suite: a subprocess on a free port, stopped afterwards.

with serve_process(home=tmp_path) as endpoint:
    client = boto3.client("rekognition", endpoint_url=endpoint, region_name="us-east-1")
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from facetrail.settings import PREFIX

READY_MARKER = "listening on "


@contextmanager
def serve_process(
    home: Path,
    *,
    models_dir: Path | None = None,
    api_key: str = "",
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Iterator[str]:
    """Start ``facetrail serve --port 0`` with its own SQLite ``home``; yield its URL.

    FACETRAIL_* variables of the calling process are not passed on, so the server's database is
    the fresh one in ``home`` whatever the caller's environment says.
    """
    home.mkdir(parents=True, exist_ok=True)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    child_env[PREFIX + "HOME"] = str(home)
    if models_dir is not None:
        child_env[PREFIX + "MODELS_DIR"] = str(models_dir)
    child_env.update(env or {})
    command = [sys.executable, "-m", "facetrail.cli.main", "serve", "--host", "127.0.0.1"]
    command += ["--port", "0"]
    if api_key:
        command += ["--api-key", api_key]
    log_path = home / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, text=True, env=child_env
        )
        try:
            yield _wait_for_url(proc, log_path, timeout)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def _wait_for_url(proc: subprocess.Popen[str], log_path: Path, timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:  # the process ended
            break
        if READY_MARKER in line:
            return line.split(READY_MARKER, 1)[1].split()[0]
    proc.kill()
    raise RuntimeError(f"facetrail serve did not start; its log: {log_path.read_text()[-2000:]}")
