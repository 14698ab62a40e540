"""Shared fixtures: real photos, real model files, a real PostgreSQL and Redis."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from facetrail.migrate import upgrade
from facetrail.settings import Settings
from tests.procs import scratch_database

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
KNN = DATA / "face_recognition" / "examples" / "knn_examples"
REDIS_URL = os.environ.get("FACETRAIL_TEST_REDIS", "redis://127.0.0.1:6379/13")

# Expected names in face_recognition's knn_examples/test (labelled by their file names).
KNN_EXPECTED = {
    "alex_lacamoire1.jpg": {"alex_lacamoire"},
    "johnsnow_test1.jpg": {"kit_harington"},
    "kit_with_rose.jpg": {"kit_harington", "rose_leslie"},
    "obama1.jpg": {"obama"},
    "obama_and_biden.jpg": {"obama", "biden"},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder: ``-m unit``, ``-m integration``, ``-m e2e`` select them."""
    for item in items:
        kind = item.path.parent.name
        if kind in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """Model files installed once per run by the project's own installer (checksums verified)."""
    from facetrail.modelfiles import install_models

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
    with scratch_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """``settings`` on a migrated SQLite, then on a migrated PostgreSQL database."""
    if request.param == "postgresql":
        settings = settings.with_(database_url=request.getfixturevalue("postgres_url"))
    upgrade(settings)
    return settings


@pytest.fixture
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()
    return REDIS_URL


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI's environment pointed at ``settings`` (embedded default, no broker)."""
    monkeypatch.setenv("FACETRAIL_HOME", str(settings.home))
    monkeypatch.setenv("FACETRAIL_MODELS_DIR", str(settings.resolved_models_dir))
    monkeypatch.delenv("FACETRAIL_BROKER_URL", raising=False)
    monkeypatch.delenv("FACETRAIL_DATABASE_URL", raising=False)
    return settings


def knn_test_images() -> list[Path]:
    return sorted((KNN / "test").iterdir())
