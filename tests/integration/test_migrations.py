"""The migrations are the schema's source of truth: they build it, and the models must agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from facetrail.db import engine_for
from facetrail.migrate import alembic_config
from facetrail.models import Base


def _diff(url: str) -> list[object]:
    with engine_for(url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'schema.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_upgrade_head_matches_models(database_url: str) -> None:
    config = alembic_config(database_url)
    command.upgrade(config, "head")
    tables = set(inspect(engine_for(database_url)).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert _diff(database_url) == []


def test_downgrade_to_base_and_back(database_url: str) -> None:
    config = alembic_config(database_url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    assert set(inspect(engine_for(database_url)).get_table_names()) <= {"alembic_version"}
    command.upgrade(config, "head")
    assert _diff(database_url) == []


def test_drift_is_detected(tmp_path: Path) -> None:
    """The agreement check must be able to fail: a column the migrations lack shows up."""
    from sqlalchemy import Column, Integer, MetaData, Table

    url = f"sqlite:///{tmp_path / 'drift.db'}"
    command.upgrade(alembic_config(url), "head")
    extra = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(extra)
    Table("jobs", extra, Column("not_migrated", Integer), extend_existing=True)
    with engine_for(url).connect() as conn:
        context = MigrationContext.configure(conn)
        diff = compare_metadata(context, extra)
    assert any("not_migrated" in repr(d) for d in diff)


@pytest.mark.parametrize("kind,ok", [("reindex", True), ("tag", True), ("bogus", False)])
def test_job_kind_check_constraint(database_url: str, kind: str, ok: bool) -> None:
    """The CHECK constraint that 0002 widened admits the new kind and still refuses others."""
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    command.upgrade(alembic_config(database_url), "head")
    insert = text(
        "INSERT INTO jobs (kind, status, parameters, backend, model_version, total_items,"
        " succeeded_items, failed_items, created_at)"
        " VALUES (:kind, 'pending', '{}', 'local', '', 0, 0, 0, CURRENT_TIMESTAMP)"
    )
    with engine_for(database_url).connect() as conn:
        if ok:
            conn.execute(insert, {"kind": kind})
        else:
            with pytest.raises(IntegrityError):
                conn.execute(insert, {"kind": kind})
        conn.rollback()
