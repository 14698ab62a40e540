"""A forked process (a worker's replacement pool process) never uses its parent's pooled
database connections."""

from __future__ import annotations

import os
from pathlib import Path

from facetrail.db import engine_for


def test_a_forked_child_starts_with_an_empty_pool(tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'fork.db'}")
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what its pool holds, then leave without cleanup
        try:
            os.write(write, str(engine.pool.checkedin()).encode())  # type: ignore[attr-defined]
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 16) == b"0"
    os.close(read)
    # The parent keeps its connection.
    assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    engine.dispose()
