"""Snapshots of large indexes: written after a build, loaded by a new worker which applies only
the changes since, rewritten after removals without the removed vectors; change logs pruned."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from facetrail.backends.local.vectors import VectorCache, log_changes, snapshot_group
from facetrail.db import session_scope
from facetrail.migrate import upgrade
from facetrail.models import LocalCollection, LocalFace, LocalFaceChange
from facetrail.settings import Settings
from facetrail.vectors import VectorIndex, logged, normalise
from facetrail.vectors import snapshots as snapshots_module
from facetrail.vectors.snapshots import Covered, Snapshots

MODEL = "test-model"
DIM = 32


def graph(count: int, seed: int = 0) -> VectorIndex[int]:
    index: VectorIndex[int] = VectorIndex(8, exact_limit=10)
    index.add(list(range(count)), np.random.default_rng(seed).normal(size=(count, 8)))
    return index


def test_the_newest_whole_snapshot_at_or_below_a_position_is_loaded(tmp_path: Path) -> None:
    store = Snapshots(tmp_path)
    group, variant = ("db", "people"), ("model", 10)
    assert store.save(group, variant, 5, graph(20), {"at": 5})
    assert store.load(group, variant, 4, exact_limit=10) is None  # only later ones
    loaded = store.load(group, variant, 7, exact_limit=10)
    assert loaded is not None and loaded.position == 5 and loaded.extra == {"at": 5}
    assert len(loaded.index) == 20 and loaded.index.approximate
    # A writer that died halfway leaves a temporary folder that is never read.
    (saved,) = store.root.rglob("5")
    (saved.parent / ".tmp-x").mkdir()
    assert store.positions(group, variant) == [5]
    assert store.save(group, variant, 9, graph(30), {"at": 9})
    assert store.positions(group, variant) == [9]  # the older one went
    other = ("model", 99)
    assert store.save(group, other, 3, graph(12), {})
    store.drop(group)
    assert store.positions(group, variant) == [] == store.positions(group, other)


def test_a_snapshot_whose_rows_were_removed_meanwhile_is_not_kept(tmp_path: Path) -> None:
    store = Snapshots(tmp_path)
    kept = store.save(("g",), ("v",), 4, graph(20), {}, still_valid=lambda: False)
    assert not kept and store.positions(("g",), ("v",)) == []


def test_update_writes_when_the_rules_ask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshots_module, "RESNAPSHOT_EVERY", 10)
    store = Snapshots(tmp_path)
    group, variant, other = ("g",), ("v",), ("w",)
    index, covered = graph(20), Covered()

    def update(position: int) -> list[int]:
        store.update(group, variant, position, index, dict, covered)
        return store.positions(group, variant)

    exact: VectorIndex[int] = VectorIndex(8)
    exact.add([1], np.ones((1, 8)))
    store.update(group, variant, 1, exact, dict, Covered())
    assert store.positions(group, variant) == []  # small exact indexes load fast: not saved
    monkeypatch.setattr(snapshots_module, "SNAPSHOT_MIN", 1)
    store.update(("large",), variant, 1, exact, dict, Covered())
    assert store.positions(("large",), variant) == [1]
    assert update(3) == [3] and covered.position == 3  # built: saved
    assert update(12) == [3]  # fewer than RESNAPSHOT_EVERY positions since
    assert update(13) == [13] and covered.position == 13
    # Another worker's recent snapshot is adopted instead of writing one more.
    assert store.save(group, variant, 20, index, {})
    store.update(group, variant, 25, index, dict, covered)
    assert store.positions(group, variant) == [20] and covered.position == 20
    # A removal: older snapshots of every variant go, and a clean one is written.
    assert store.save(group, other, 21, index, {})
    index.remove([0])
    covered.removed_at = 26
    assert update(26) == [26] and store.positions(group, other) == []
    assert covered == Covered(26, None)


# The local backend's cache, on SQLite -----------------------------------------------------------
@pytest.fixture
def database(tmp_path: Path) -> Iterator[Settings]:
    settings = Settings(home=tmp_path / "home", vector_exact_limit=100)
    upgrade(settings)
    with session_scope(settings) as session:
        session.add(LocalCollection(name="big", model_version=MODEL))
    yield settings


def insert(session: Session, vectors: np.ndarray, owners: list[str]) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in owners]
    session.add_all(
        LocalFace(
            face_id=face_id,
            collection_name="big",
            external_id=owner,
            model_version=MODEL,
            embedding=vector.astype(np.float32).tobytes(),
            box_left=0.1,
            box_top=0.1,
            box_width=0.5,
            box_height=0.5,
            confidence=99.0,
            image_sha256=None,
        )
        for face_id, owner, vector in zip(ids, owners, vectors, strict=True)
    )
    session.flush()
    return ids


def enroll(settings: Settings, vectors: np.ndarray, owner: str) -> list[str]:
    with session_scope(settings) as session:
        ids = insert(session, vectors, [owner] * len(vectors))
        log_changes(session, "big", ids, [])
    return ids


def delete(settings: Settings, face_ids: list[str]) -> None:
    with session_scope(settings) as session:
        for face_id in face_ids:
            session.delete(session.get_one(LocalFace, face_id))
        log_changes(session, "big", [], face_ids)


def search(settings: Settings, cache: VectorCache, query: np.ndarray) -> tuple[str, str | None]:
    with session_scope(settings) as session:
        collection = session.get_one(LocalCollection, "big")
        vectors = cache.get(session, collection, MODEL)
        labels, _ = vectors.index.search(query[None, :], 1)
        return labels[0][0], vectors.meta_of(labels)[0][0]


def snapshot_files(settings: Settings) -> bytes:
    root = settings.resolved_vector_snapshots
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_a_new_worker_loads_the_snapshot_and_applies_only_later_changes(
    database: Settings,
) -> None:
    settings = database
    rng = np.random.default_rng(1)
    vectors = normalise(rng.normal(size=(400, DIM)))
    with session_scope(settings) as session:  # a bulk load: no log, one generation
        ids = insert(session, vectors, [f"p{i // 4}" for i in range(400)])
        session.execute(update(LocalCollection).values(generation=1))

    first = VectorCache(settings)
    assert search(settings, first, vectors[7]) == (ids[7], "p1")
    assert (first.stats.reloads, first.stats.snapshot_loads) == (1, 0)  # built from the database
    assert Snapshots.for_settings(settings).root.is_dir()

    late = normalise(rng.normal(size=(1, DIM)))
    (late_id,) = enroll(settings, late, "late")
    second = VectorCache(settings)  # a worker started after the enrollment
    assert search(settings, second, late[0]) == (late_id, "late")
    assert (second.stats.reloads, second.stats.snapshot_loads) == (1, 1)
    assert search(settings, first, late[0]) == (late_id, "late")
    assert (first.stats.reloads, first.stats.deltas) == (1, 1)

    # A deletion: the next worker to apply it replaces the snapshot with one that has no trace.
    assert vectors[9].astype(np.float16).tobytes() in snapshot_files(settings)
    delete(settings, [ids[9]])
    assert search(settings, first, vectors[9])[0] != ids[9]
    files = snapshot_files(settings)
    assert vectors[9].astype(np.float16).tobytes() not in files
    assert vectors[10].astype(np.float16).tobytes() in files
    third = VectorCache(settings)
    assert search(settings, third, vectors[9])[0] != ids[9]
    assert third.stats.snapshot_loads == 1


def test_the_change_log_is_pruned_and_a_worker_behind_it_loads_again(
    database: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logged, "PRUNE_EVERY", 5)
    monkeypatch.setattr(logged, "LOG_KEEP", 8)
    monkeypatch.setattr(snapshots_module, "RESNAPSHOT_EVERY", 4)
    settings = database
    rng = np.random.default_rng(2)
    base = normalise(rng.normal(size=(200, DIM)))
    behind, active = VectorCache(settings), VectorCache(settings)
    enroll(settings, base, "base")  # generation 1
    search(settings, behind, base[0])
    added = []
    for i in range(9):  # generations 2 to 10; the active worker searches after each
        added += enroll(settings, normalise(rng.normal(size=(1, DIM))), f"p{i}")
        search(settings, active, base[0])
    store = Snapshots.for_settings(settings)
    with session_scope(settings) as session:
        collection = session.get_one(LocalCollection, "big")
        group = snapshot_group(session, "big", collection.created_at)
        generations = session.scalars(
            select(func.distinct(LocalFaceChange.generation)).order_by(LocalFaceChange.generation)
        ).all()
        vector = np.frombuffer(session.get_one(LocalFace, added[-1]).embedding, np.float32)
    # Pruned at generation 10: only the newest LOG_KEEP generations are left, and the active
    # worker's latest snapshot (every RESNAPSHOT_EVERY generations) is within them.
    assert generations == list(range(3, 11))
    assert store.positions(group, (MODEL, 100)) == [9]
    # The worker still at generation 1 cannot bridge the gap: it loads again, from that
    # snapshot and the one change since, and sees every enrollment.
    assert search(settings, behind, vector)[0] == added[-1]
    assert (behind.stats.reloads, behind.stats.snapshot_loads, behind.stats.deltas) == (2, 1, 0)
