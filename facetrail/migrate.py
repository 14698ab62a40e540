"""Running the Alembic migrations (the schema's source of truth) from code and the CLI."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from facetrail.db import engine_for
from facetrail.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings.resolved_database_url), revision)


def is_current(settings: Settings) -> bool:
    url = settings.resolved_database_url
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    with engine_for(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == head


def ensure_schema(settings: Settings) -> None:
    """The embedded SQLite database upgrades itself; a shared database is migrated on purpose."""
    if settings.resolved_database_url.startswith("sqlite") and not is_current(settings):
        upgrade(settings)
