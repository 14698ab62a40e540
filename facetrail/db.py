"""Engines and sessions: one engine per database URL per process."""

from __future__ import annotations

import functools
import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from facetrail.settings import Settings


@functools.cache
def engine_for(url: str) -> Engine:
    """The engine of ``url`` in this process. A forked child (a worker's pool process started
    after its main process used the database) starts with empty pools, see ``_after_fork``."""
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    engine = create_engine(url, **kwargs)
    _engines.add(engine)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _after_fork() -> None:
    # A pooled connection inherited from the parent shares its socket: the child must never
    # use one. close=False leaves the parent's connections open for the parent.
    for engine in list(_engines):
        engine.dispose(close=False)


_engines: weakref.WeakSet[Engine] = weakref.WeakSet()
os.register_at_fork(after_in_child=_after_fork)


def database_of(session: Session) -> str:
    """The database ``session`` is bound to, password hidden: part of the key of anything cached
    per collection, since ids and versions repeat across databases (a process may serve several)."""
    return session.get_bind().engine.url.render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    # WAL lets a worker write while the CLI reads progress.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    # Deleted rows are overwritten with zeros, not left in free pages: erasing a person must
    # leave none of their embeddings in the database file.
    cur.execute("PRAGMA secure_delete=ON")
    cur.close()


def checkpoint(settings: Settings) -> None:
    """Copy SQLite's write-ahead log into the database file and empty it, so rows an erasure
    overwrote survive in neither file. PostgreSQL keeps dead rows until VACUUM (see
    docs/security.md); nothing to do here."""
    url = settings.resolved_database_url
    if not url.startswith("sqlite"):
        return
    with engine_for(url).connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def session_factory(settings: Settings) -> sessionmaker[Session]:
    return _factory(settings.resolved_database_url)


@functools.cache
def _factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(engine_for(url), expire_on_commit=False)


@contextmanager
def session_scope(settings: Settings) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = session_factory(settings)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
