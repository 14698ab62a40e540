"""``python -m facetrail.server``: the same as ``facetrail serve``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from facetrail.cli.serve import add_serve_arguments, serve
from facetrail.errors import FacetrailError
from facetrail.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m facetrail.server",
        description="A Rekognition-compatible endpoint on the local backend.",
    )
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return serve(Settings.from_env(), args)
    except FacetrailError as exc:
        print(f"facetrail serve: error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
