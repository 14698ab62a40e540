"""Saved vector indexes, so a new worker loads a large index instead of building it again.

A snapshot is one ``VectorIndex`` as ``VectorIndex.save`` wrote it, plus its owner's own data
(``extra.json``), taken at one position of a change log: the generation or version of the
collection it reflects. A worker loads the newest snapshot at or below the collection's current
position and applies the logged changes since, as it does for its own index between searches.

Layout: ``<root>/<group>/<variant>/<position>/``, ``root`` being ``FACETRAIL_VECTOR_SNAPSHOTS``
(``FACETRAIL_HOME/vectors`` when unset; workers sharing the folder share the snapshots), the
group a digest of what the index is of (the database and the collection, so dropping the group
drops every snapshot of the collection), the variant a digest of how it was built (model
version, settings). A snapshot is written into a temporary folder and renamed into place, so a
reader sees whole snapshots only; older positions of the variant are then deleted.

When snapshots are written, and how long change logs are kept (``facetrail/backends/local/
vectors.py`` for faces, ``facetrail/services/naming.py`` for person templates):

- after an index is loaded from the database, if it is a graph (the costly kind to build) or
  holds ``SNAPSHOT_MIN`` rows or more;
- after ``RESNAPSHOT_EVERY`` positions of changes applied since the newest snapshot, and after
  any applied change that removed rows, so no older snapshot keeps a removed vector (a deletion
  also drops the collection's snapshots in this folder as soon as it commits);
- the change logs keep the newest ``LOG_KEEP`` positions of each collection (pruned every
  ``PRUNE_EVERY`` positions by the writer of the log). ``LOG_KEEP`` is several times
  ``RESNAPSHOT_EVERY``, so the snapshot of any worker that searches the collection is always
  within the kept log; an older copy (an idle worker, a folder no worker searched from) finds a
  gap in the log and loads again, from a snapshot or, failing that, from the database.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic

from sqlalchemy.exc import SQLAlchemyError

from facetrail.settings import Settings
from facetrail.vectors import GRAPH, K, VectorIndex

log = logging.getLogger(__name__)

# Sets smaller than this that are not graphs load from the database about as fast.
SNAPSHOT_MIN = 10_000
RESNAPSHOT_EVERY = 10_000
LOG_KEEP = 50_000
PRUNE_EVERY = 1_000
_TEMP = ".tmp-"
# A temporary folder this old was left by a writer that died: it is deleted.
_STALE_TEMP_S = 3600


def digest(parts: Sequence[object]) -> str:
    return hashlib.sha256("\0".join(str(p) for p in parts).encode()).hexdigest()[:32]


@dataclass
class Covered:
    """Which snapshot covers an index its owner keeps up to date."""

    # The snapshot the owner loaded, wrote or found written (None: none known).
    position: int | None = None
    # The newest position at which the owner removed rows since then (None: no removal).
    removed_at: int | None = None


@dataclass
class Snapshot(Generic[K]):
    position: int
    index: VectorIndex[K]
    extra: Any


class Snapshots:
    """The snapshot folders under one root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def for_settings(cls, settings: Settings) -> Snapshots:
        return cls(settings.resolved_vector_snapshots)

    def _variant(self, group: Sequence[object], variant: Sequence[object]) -> Path:
        # Snapshots of other graph parameters are not this version's: they are built again.
        return self.root / digest(group) / digest([*variant, *GRAPH])

    def positions(self, group: Sequence[object], variant: Sequence[object]) -> list[int]:
        """Positions with a whole snapshot, oldest first."""
        try:
            names = [p.name for p in self._variant(group, variant).iterdir()]
        except FileNotFoundError:  # none yet, or being dropped
            return []
        return sorted(int(name) for name in names if name.isdigit())

    def latest(
        self, group: Sequence[object], variant: Sequence[object], at_most: int
    ) -> int | None:
        below = [p for p in self.positions(group, variant) if p <= at_most]
        return below[-1] if below else None

    def load(
        self,
        group: Sequence[object],
        variant: Sequence[object],
        at_most: int,
        *,
        exact_limit: int,
    ) -> Snapshot[Any] | None:
        """The newest snapshot at or below ``at_most``; None if there is none (or it is gone or
        unreadable: another process may delete it meanwhile, and the caller builds instead)."""
        position = self.latest(group, variant, at_most)
        if position is None:
            return None
        folder = self._variant(group, variant) / str(position)
        try:
            index: VectorIndex[Any] = VectorIndex.load(folder, exact_limit=exact_limit)
            extra = json.loads((folder / "extra.json").read_text())
        except (OSError, ValueError, RuntimeError):
            return None
        return Snapshot(position, index, extra)

    def save(
        self,
        group: Sequence[object],
        variant: Sequence[object],
        position: int,
        index: VectorIndex[Any],
        extra: Any,
        *,
        still_valid: Callable[[], bool] = lambda: True,
    ) -> bool:
        """Write a snapshot at ``position`` and delete the variant's older ones.

        ``still_valid`` is asked after the snapshot is in place: False (rows it holds were
        removed meanwhile, and the remover may have dropped the folder before this one
        appeared) deletes it again. Returns whether a snapshot stays at ``position``.
        """
        folder = self._variant(group, variant)
        final = folder / str(position)
        if final.exists():
            return True
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.glob(f"{_TEMP}*"):
                if time.time() - stale.stat().st_mtime > _STALE_TEMP_S:
                    shutil.rmtree(stale, ignore_errors=True)
            temp = folder / f"{_TEMP}{uuid.uuid4().hex}"
            temp.mkdir()
        except OSError:  # the group is being dropped
            return False
        try:
            index.save(temp)
            (temp / "extra.json").write_text(json.dumps(extra))
            os.rename(temp, final)
        except OSError:
            shutil.rmtree(temp, ignore_errors=True)
            # Another process renamed the same position into place first: theirs stays.
            return final.exists()
        try:
            valid = still_valid()
        except SQLAlchemyError:
            log.warning("could not check snapshot %s against the change log", final, exc_info=True)
            valid = False
        if not valid:
            shutil.rmtree(final, ignore_errors=True)
            return False
        for older in self.positions(group, variant):
            if older < position:
                shutil.rmtree(folder / str(older), ignore_errors=True)
        return True

    def update(
        self,
        group: Sequence[object],
        variant: Sequence[object],
        position: int,
        index: VectorIndex[Any],
        extra: Callable[[], Any],
        covered: Covered,
        *,
        still_valid: Callable[[], bool] = lambda: True,
    ) -> None:
        """Called by an index's owner whenever it has brought the index to ``position``: write
        a snapshot if the rules above ask for one, and record in ``covered`` which one now
        covers the index."""
        if not index.approximate and len(index) < SNAPSHOT_MIN:
            return
        saved, removed_at = covered.position, covered.removed_at
        if removed_at is None and saved is not None and position - saved < RESNAPSHOT_EVERY:
            return
        latest = self.latest(group, variant, position)
        # Another worker's snapshot that is recent enough and written after any removal here.
        clean = latest is not None and (removed_at is None or latest >= removed_at)
        if latest is not None and clean and position - latest < RESNAPSHOT_EVERY:
            covered.position, covered.removed_at = latest, None
            return
        if removed_at is not None:
            # Older snapshots (of any variant) may hold the removed rows' vectors.
            self.drop(group)
        started = time.perf_counter()
        if self.save(group, variant, position, index, extra(), still_valid=still_valid):
            covered.position, covered.removed_at = position, None
            took = time.perf_counter() - started
            log.info("saved a vector index of %d rows at %d in %.1f s", len(index), position, took)
        else:
            covered.position = None

    def drop(self, group: Sequence[object]) -> None:
        """Delete every snapshot of a group (a collection), whatever its variant."""
        folder = self.root / digest(group)
        for _ in range(3):  # a writer may be adding files meanwhile (its snapshot fails then)
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                return
