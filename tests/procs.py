"""Real processes for failure tests: workers, a private Redis, a TCP proxy to PostgreSQL."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from facetrail.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_URL = os.environ.get(
    "FACETRAIL_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def scratch_database(prefix: str = "facetrail_test") -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped on exit."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from facetrail.db import engine_for

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url
    finally:
        engine_for(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port}")


class LineProcess:
    """``python -m module *args`` with ``settings``' database, models and home in its
    environment (and ``env``), speaking one JSON value per line on stdin and stdout; ``ready``
    is the first line it writes."""

    def __init__(self, module: str, settings: Settings, *args: str, **env: str) -> None:
        self.module = module
        environ = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "FACETRAIL_DATABASE_URL": settings.resolved_database_url,
            "FACETRAIL_MODELS_DIR": str(settings.resolved_models_dir),
            "FACETRAIL_HOME": str(settings.home),
            **env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=environ,
            cwd=ROOT,
        )
        self.ready = self.read()

    def read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.module} exited")
        return json.loads(line)

    def send(self, value: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(value) + "\n")
        self.proc.stdin.flush()

    def ask(self, value: Any) -> Any:
        self.send(value)
        return self.read()

    def close(self, timeout: float = 30) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=timeout)


class Worker:
    """A `facetrail worker` subprocess in its own process group (and session). ``code``: a
    folder holding another tree of facetrail's code to run instead of this one (a baseline)."""

    def __init__(
        self,
        settings: Settings,
        log: Path,
        *,
        concurrency: int = 1,
        code: Path | None = None,
        pool: str = "prefork",
        **env: str,
    ) -> None:
        self.log_path = log
        self._log = log.open("ab")
        full_env = {
            **os.environ,
            **({"PYTHONPATH": str(code)} if code is not None else {}),
            "FACETRAIL_DATABASE_URL": settings.database_url,
            "FACETRAIL_BROKER_URL": settings.broker_url,
            "FACETRAIL_MODELS_DIR": str(settings.resolved_models_dir),
            "FACETRAIL_HOME": str(settings.home),
            "FACETRAIL_VISIBILITY_TIMEOUT": str(settings.visibility_timeout),
            "FACETRAIL_REQUEUE_AFTER": str(settings.requeue_after),
            **env,
        }
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "facetrail.cli.main", "worker"),
                f"--concurrency={concurrency}",
                # Only when asked: older trees run as baselines may not know the option.
                *([f"--pool={pool}"] if pool != "prefork" else []),
            ],
            env=full_env,
            cwd=code,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool child) at once."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


class PrivateRedis:
    """A Redis of the test's own, with an append-only file, so it can be restarted."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.command = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(folder),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # a clean shutdown flushes the AOF
            self.proc.wait(timeout=30)

    def restart(self, down_for: float = 2.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def lost_messages(self, queue: str) -> list[dict[str, Any]]:
        """Messages of ``queue`` this Redis popped that no consumer recorded as unacknowledged
        (kombu's ``unacked`` hash), replayed from the append-only file: what a pop leaves whose
        worker was killed, or whose reply was lost, before the record."""
        waiting: list[bytes] = []
        popped: list[bytes] = []
        recorded: set[bytes] = set()
        for command in _aof_commands(self.folder / "appendonlydir"):
            if len(command) < 2:  # MULTI, EXEC
                continue
            op, key, rest = command[0].upper(), command[1], command[2:]
            if key == queue.encode() and op == b"LPUSH":
                waiting[0:0] = reversed(rest)
            elif key == queue.encode() and op == b"RPUSH":  # kombu's restores
                waiting.extend(rest)
            elif key == queue.encode() and op == b"RPOP":  # BRPOP, as Redis logs it
                popped.append(waiting.pop())
            elif key == b"unacked" and op == b"HSET":
                recorded.add(rest[0])
        messages = [json.loads(raw) for raw in popped]
        return [m for m in messages if m["properties"]["delivery_tag"].encode() not in recorded]


def _aof_commands(folder: Path) -> Iterator[list[bytes]]:
    """The commands of a Redis 7 append-only folder's incremental files, in order."""
    files = sorted(folder.glob("*.incr.aof"), key=lambda p: int(p.name.split(".")[-3]))
    for path in files:
        stream = io.BytesIO(path.read_bytes())
        while header := stream.readline():  # *<count>
            command = []
            for _ in range(int(header[1:])):
                size = int(stream.readline()[1:])  # $<size>
                command.append(stream.read(size + 2)[:size])
            yield command


class TcpProxy:
    """Forwards a local port to PostgreSQL; ``cut`` drops every connection and refuses new ones."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        self._thread = threading.Thread(target=self._accept, args=(server,), daemon=True)
        self._thread.start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._server is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not, and
            # the port would go on accepting.
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def restore(self) -> None:
        self.start()
