"""Exact per-collection vector search over the local backend's stored embeddings.

Collections here hold hundreds to a few thousand faces, where a matrix product beats any index.
Each process caches a collection's matrix and reloads it when the collection's generation moves.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from facetrail.backends.base import Embedding
from facetrail.models import LocalCollection, LocalFace


@dataclass(frozen=True)
class VectorSet:
    generation: int
    face_ids: list[str]
    external_ids: list[str | None]
    matrix: Embedding  # (n, dim), rows L2-normalised


def to_blob(vector: Embedding) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_blob(blob: bytes) -> Embedding:
    return np.frombuffer(blob, dtype=np.float32)


class VectorCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sets: dict[tuple[str, str], VectorSet] = {}

    def forget(self, collection_name: str) -> None:
        """Drop a collection's cached vectors (after a deletion, so this process keeps none)."""
        with self._lock:
            for key in [k for k in self._sets if k[0] == collection_name]:
                del self._sets[key]

    def get(self, session: Session, collection: LocalCollection, model_version: str) -> VectorSet:
        key = (collection.name, model_version)
        with self._lock:
            cached = self._sets.get(key)
        if cached is not None and cached.generation == collection.generation:
            return cached
        rows = session.execute(
            select(LocalFace.face_id, LocalFace.external_id, LocalFace.embedding)
            .where(
                LocalFace.collection_name == collection.name,
                LocalFace.model_version == model_version,
            )
            .order_by(LocalFace.face_id)
        ).all()
        matrix = (
            np.stack([from_blob(r.embedding) for r in rows])
            if rows
            else np.zeros((0, 0), dtype=np.float32)
        )
        fresh = VectorSet(
            generation=collection.generation,
            face_ids=[r.face_id for r in rows],
            external_ids=[r.external_id for r in rows],
            matrix=matrix.astype(np.float32, copy=False),
        )
        with self._lock:
            self._sets[key] = fresh
        return fresh
