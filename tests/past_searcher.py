"""A second process searching the past: reads queries on stdin, answers on stdout.

Each line in is ``[collection, {"person": id}]`` or ``[collection, {"image": path}]``; each
line out is the matched images and how this process's past-faces index got up to date so far
(full reloads, applied deltas).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from facetrail.api import Facetrail
from facetrail.services import past
from facetrail.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    ft = Facetrail(settings)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        collection, query = json.loads(line)
        result = ft.search_past(collection, query.get("image"), person=query.get("person"))
        stats = past.cache(settings).stats
        answer = {
            "images": sorted(Path(m["image"]).name for m in result["matches"]),
            "reloads": stats.reloads,
            "deltas": stats.deltas,
        }
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
