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


def test_collections_pin_the_detector_of_their_model_version(database_url: str) -> None:
    """0012 records each local collection's detector from its model version (another backend's
    collections and ones already pinned are left alone); downgrading takes it out again."""
    import json

    from sqlalchemy import text

    config = alembic_config(database_url)
    command.upgrade(config, "0011")
    rows = {
        "old": ("local", {"embedder": "mobilefacenet"}, "mtcnn-tflite/mobilefacenet-192@d8ba40c0"),
        "fast": ("local", {"embedder": "dlib"}, "retinaface-onet/dlib-128@96e1fbda"),
        "pinned": ("local", {"embedder": "dlib", "detector": "retinaface"}, "mtcnn-tflite/x"),
        "aws": ("rekognition", {"aws_region": "eu-west-1"}, "7.0"),
    }
    insert = text(
        "INSERT INTO collections (name, backend, backend_collection_id, backend_options,"
        " model_version, version, public_figures, past_generation, has_corrections,"
        " created_at, updated_at) VALUES (:name, :backend, :name, :options, :model, 0,"
        " false, 0, false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
    engine = engine_for(database_url)
    with engine.begin() as conn:
        for name, (backend, pinned, model) in rows.items():
            conn.execute(
                insert,
                {"name": name, "backend": backend, "options": json.dumps(pinned), "model": model},
            )

    def options() -> dict[str, dict[str, str]]:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT name, backend_options FROM collections")).all()
        return {n: o if isinstance(o, dict) else json.loads(o) for n, o in found}

    command.upgrade(config, "0012")
    assert options() == {
        "old": {"embedder": "mobilefacenet", "detector": "mtcnn"},
        "fast": {"embedder": "dlib", "detector": "retinaface-onet"},
        "pinned": {"embedder": "dlib", "detector": "retinaface"},
        "aws": {"aws_region": "eu-west-1"},
    }
    command.downgrade(config, "0011")
    assert options() == {
        "old": {"embedder": "mobilefacenet"},
        "fast": {"embedder": "dlib"},
        "pinned": {"embedder": "dlib"},
        "aws": {"aws_region": "eu-west-1"},
    }
