"""What the speed benches run side by side: checkouts of the code, and worker layouts.

A :class:`Code` is a tree of facetrail's code: this checkout, or a baseline revision exported
from git (``baseline_code``), run with the same virtualenv and model files by pointing
``PYTHONPATH`` (and the working directory) at it. A :class:`Layout` is how a machine's cores are
split: worker processes x inference threads each (``FACETRAIL_WORKER_CONCURRENCY`` x
``FACETRAIL_THREADS``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Code:
    label: str
    root: Path

    def env(self) -> dict[str, str]:
        """The environment that makes a child process import this tree's facetrail."""
        return {**os.environ, "PYTHONPATH": str(self.root)}

    def model_defaults(self) -> dict[str, str]:
        """The face detector and embedder this tree's settings default to, which a collection it
        makes would pin (a tree may know only some of them)."""
        script = (
            "import json; from facetrail.settings import Settings as S; "
            "keys = ('detector', 'embedder'); "
            "print(json.dumps({k: getattr(S, k) for k in keys if hasattr(S, k)}))"
        )
        out = subprocess.run(
            [sys.executable, "-c", script],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        defaults: dict[str, str] = json.loads(out)
        return defaults


THIS = Code("this checkout", REPO)


def baseline_code(rev: str, folder: Path) -> Code:
    """The tree of ``rev`` (e.g. the commit this branch left main at), exported into ``folder``
    with ``git archive``: only the code differs from this checkout's runs."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.run(["git", "archive", commit], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return Code(f"baseline {commit}", folder)


@dataclass(frozen=True)
class Layout:
    """``processes`` tasks at a time, each in its own process (Celery's prefork pool) or, with
    ``pool="threads"``, all in one process's threads; ``threads`` inference threads per model;
    ``read_ahead`` tasks held in reserve per process (None: the code's default)."""

    processes: int
    threads: int
    pool: str = "prefork"
    read_ahead: int | None = None

    @classmethod
    def parse_list(cls, text: str) -> list[Layout]:
        """``"1x2,2x1,4tx1,2x1r2"`` -> layouts; ``4tx1``: 4 tasks in one process's thread pool;
        ``r2``: 2 tasks in reserve per process (``FACETRAIL_READ_AHEAD``)."""
        out = []
        for part in text.split(","):
            if part.strip():
                tasks, rest = part.strip().lower().split("x")
                threads, _, reserve = rest.partition("r")
                pool = "threads" if tasks.endswith("t") else "prefork"
                ahead = int(reserve) if reserve else None
                out.append(cls(int(tasks.rstrip("t")), int(threads), pool, ahead))
        return out

    def env(self) -> dict[str, str]:
        """What a worker of this layout is started with, beyond its code's defaults."""
        env = {"FACETRAIL_THREADS": str(self.threads)}
        if self.read_ahead is not None:
            env["FACETRAIL_READ_AHEAD"] = str(self.read_ahead)
        return env

    def __str__(self) -> str:
        pool = "t" if self.pool == "threads" else ""
        ahead = "" if self.read_ahead is None else f"r{self.read_ahead}"
        return f"{self.processes}{pool}x{self.threads}{ahead}"


def alternating(codes: Sequence[Code], round_index: int) -> list[Code]:
    """The codes in the order of round ``round_index``: A B, then B A, ... so that load that
    drifts during a run falls on both alike."""
    return list(codes) if round_index % 2 == 0 else list(reversed(codes))


def session_cpu_seconds(session_id: int) -> float:
    """CPU seconds used so far by the live processes of a session (a process started with
    ``start_new_session`` and every child it forks, e.g. a Celery worker and its pool)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[3]) == session_id:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick
