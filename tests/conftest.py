"""Shared fixtures: real photos, real model files, a real PostgreSQL and Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from facetrail.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
KNN = DATA / "face_recognition" / "examples" / "knn_examples"
POSTGRES_ADMIN_URL = os.environ.get(
    "FACETRAIL_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FACETRAIL_TEST_REDIS", "redis://127.0.0.1:6379/13")

# Expected names in face_recognition's knn_examples/test (labelled by their file names).
KNN_EXPECTED = {
    "alex_lacamoire1.jpg": {"alex_lacamoire"},
    "johnsnow_test1.jpg": {"kit_harington"},
    "kit_with_rose.jpg": {"kit_harington", "rose_leslie"},
    "obama1.jpg": {"obama"},
    "obama_and_biden.jpg": {"obama", "biden"},
}


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """Model files installed once per run by the project's own installer (checksums verified)."""
    from facetrail.weights import install_models

    path = Path(
        os.environ.get("FACETRAIL_MODELS_DIR", Path.home() / ".local/share/facetrail/models")
    )
    install_models(Settings(models_dir=path))
    return path


@pytest.fixture
def settings(tmp_path: Path, models_dir: Path) -> Settings:
    """The embedded default: local backend, SQLite in a fresh folder, no broker."""
    return Settings(home=tmp_path / "home", models_dir=models_dir)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"facetrail_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        from facetrail.db import engine_for

        url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        engine_for(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()
    return REDIS_URL


def knn_test_images() -> list[Path]:
    return sorted((KNN / "test").iterdir())
