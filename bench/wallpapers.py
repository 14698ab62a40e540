"""``python -m bench.wallpapers``: labels on real nature photos that no other check uses.

The shared labelled photos show no landscape, so scene labels were never tried on a real one.
Debian's ``mate-backgrounds`` (1.26.0-1, GPL-2+, photos credited in its copyright file) ships a
few nature photographs; this fetches the package as ``bench.scenes`` does (``apt-get download``,
sha256 checked, ``dpkg-deb -x``) and runs the labels operation on six of them. What each photo
shows and which labels (or parents) would count as right were written down from looking at the
photos, before the model ever ran on them. Nothing here sets a threshold: the labels operation
runs with its default floor.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.scenes import Package, fetch
from facetrail.backends.local.backend import LocalBackend
from facetrail.images import open_image
from facetrail.settings import Settings

MATE = Package(
    "mate-backgrounds",
    "1.26.0-1",
    "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04",
    "GPL-2+ (photos credited in debian/copyright)",
)
FOLDER = "usr/share/backgrounds/mate/nature"

# photo -> (what it shows, labels or parents that would be right); fixed before the first run.
PHOTOS: dict[str, tuple[str, frozenset[str]]] = {
    "Dune.jpg": (
        "dune grass, the sea behind",
        frozenset({"Nature", "Outdoors", "Water", "Beach", "Shoreline", "Sandbar", "Seashore"}),
    ),
    "Storm.jpg": ("storm clouds over flat land and a road", frozenset({"Nature", "Outdoors"})),
    "LadyBird.jpg": (
        "ladybird on a stem among small blue flowers",
        frozenset({"Ladybug", "Insect"}),
    ),
    "YellowFlower.jpg": ("yellow daisy-like flower, close up", frozenset({"Flower", "Plant"})),
    "Garden.jpg": ("red-orange marigold, close up", frozenset({"Flower", "Plant"})),
    "FreshFlower.jpg": ("orange flower petals, close up", frozenset({"Flower", "Plant"})),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wallpapers", description=__doc__)
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "facetrail-wallpapers"
    )
    args = parser.parse_args(argv)
    folder = fetch(MATE, args.cache) / FOLDER
    settings = Settings.from_env()
    tagger = LocalBackend(settings)
    print("| photo | shows | right if any of | labels (top 6) | right |")
    print("|---|---|---|---|---|")
    hits = 0
    for name, (shows, right) in PHOTOS.items():
        labels = tagger.detect_labels(open_image(settings, str(folder / name)))
        found = {label.name for label in labels} | {p for label in labels for p in label.parents}
        top = ", ".join(f"{label.name} {label.confidence:.0f}" for label in labels[:6]) or "-"
        hit = bool(found & right)
        hits += hit
        print(
            f"| {name} | {shows} | {', '.join(sorted(right))} | {top} | {'yes' if hit else 'no'} |"
        )
    print(f"\nRight on {hits} of {len(PHOTOS)} photos (default floor).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
