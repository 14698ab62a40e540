"""A second process using the local backend: reads query vectors on stdin, answers on stdout.

Each line in is a JSON list of floats; each line out is the matching face ids, best first, and
how this process's collection cache got up to date so far (whole loads, those of them from a
snapshot, applied deltas).
"""

from __future__ import annotations

import json
import sys

import numpy as np

from facetrail.backends.local.backend import LocalBackend
from facetrail.settings import Settings


def main() -> None:
    backend = LocalBackend(Settings.from_env())
    collection = sys.argv[1]
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        query = np.asarray(json.loads(line), dtype=np.float32)[None, :]
        matches = backend.search_embeddings(collection, query, max_faces=5)[0]
        stats = backend._vectors.stats
        answer = {
            "faces": [m.face_id for m in matches],
            "people": [m.external_id for m in matches],
            "reloads": stats.reloads,
            "snapshot_loads": stats.snapshot_loads,
            "deltas": stats.deltas,
        }
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
