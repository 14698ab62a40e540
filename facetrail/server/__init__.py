"""``facetrail serve``: a Rekognition-compatible endpoint backed by the local backend.

An unmodified boto3 client pointed at it with ``endpoint_url`` can create collections, index,
search, detect and compare faces, and detect labels, text, moderation labels and known people
(RecognizeCelebrities) offline. See docs/rekognition.md for what is and is not covered.
"""

from __future__ import annotations

import asyncio
import sys
import threading

from facetrail.backends import get_backend
from facetrail.backends.base import Backend
from facetrail.errors import ConfigurationError
from facetrail.server.http import RekognitionHTTPServer, ServeLimits, is_loopback
from facetrail.server.service import RekognitionService
from facetrail.settings import Settings

__all__ = ["RekognitionHTTPServer", "RekognitionService", "ServeLimits", "make_server", "run"]


def make_server(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    api_key: str = "",
    backend: Backend | None = None,
) -> RekognitionHTTPServer:
    """A bound server (port 0 picks a free one; see ``.url``), not yet serving."""
    if not api_key and not is_loopback(host):
        raise ConfigurationError(
            f"serving on {host} (beyond localhost) needs an API key: pass --api-key or set "
            "FACETRAIL_SERVE_API_KEY, and send it in the X-Api-Key header"
        )
    from facetrail.migrate import ensure_schema

    ensure_schema(settings)
    limits = ServeLimits.from_settings(settings)
    # The service decodes with serve's own pixel cap, which may be lower than the jobs' one.
    pixels = min(settings.max_image_pixels, limits.max_image_pixels)
    service = RekognitionService(
        backend or get_backend(settings, "local"), settings.with_(max_image_pixels=pixels)
    )
    try:
        return RekognitionHTTPServer((host, port), service, api_key=api_key, limits=limits)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def run(settings: Settings, host: str, port: int, *, api_key: str = "") -> int:
    """Serve until interrupted (Ctrl-C or SIGTERM)."""
    server = make_server(settings, host, port, api_key=api_key)
    auth = "X-Api-Key required" if api_key else "no API key"
    # Tests and scripts read the address from this line (port 0 picks a free port).
    print(f"facetrail serve: listening on {server.url} ({auth})", flush=True)
    try:
        if threading.current_thread() is threading.main_thread():
            asyncio.run(server.serve(stop_on_signals=True))
        else:
            server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        print("facetrail serve: stopped", file=sys.stderr, flush=True)
    return 0
