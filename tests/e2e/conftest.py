"""What the end-to-end tests share: settings on a fresh, migrated PostgreSQL database and Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from facetrail.migrate import upgrade
from facetrail.settings import Settings


@pytest.fixture
def service_settings(
    tmp_path: Path, models_dir: Path, postgres_url: str, redis_url: str
) -> Settings:
    """Settings for this process and its workers: a migrated scratch PostgreSQL, a Redis broker."""
    settings = Settings(
        home=tmp_path / "home",
        models_dir=models_dir,
        database_url=postgres_url,
        broker_url=redis_url,
    )
    upgrade(settings)
    return settings
