"""``facetrail serve``: the Rekognition API on the local backend (see docs/rekognition.md)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from facetrail.settings import Settings

DEFAULT_PORT = 8900
HELP = "serve a Rekognition-compatible endpoint (JSON 1.1) on the local backend"


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)"
    )
    parser.add_argument(
        "--api-key",
        help="require this value in the X-Api-Key header (FACETRAIL_SERVE_API_KEY); "
        "needed to bind beyond localhost",
    )


def add_serve_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``serve`` on the CLI's subparsers."""
    parser = subparsers.add_parser("serve", help=HELP, description=HELP)
    add_serve_arguments(parser)
    parser.set_defaults(handler=serve)


def serve(settings: Settings, args: argparse.Namespace) -> int:
    from facetrail.server import run

    # One line per request on stderr, as a development server shows them.
    server_log = logging.getLogger("facetrail.server")
    if not server_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        server_log.addHandler(handler)
        server_log.setLevel(logging.INFO)

    api_key = args.api_key or settings.serve_api_key
    return run(settings, args.host, args.port, api_key=api_key)
