"""HTTP for ``facetrail serve``: POST / with X-Amz-Target, JSON in and out, on the stdlib server.

Signatures are not checked (any or no Authorization header is accepted); an API key, when set,
is required in the ``X-Api-Key`` header of every request.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from facetrail.server.protocol import (
    CONTENT_TYPE,
    TARGET_PREFIX,
    ServiceError,
    operation_model,
    parse_input,
    service_model,
)
from facetrail.server.service import RekognitionService

log = logging.getLogger("facetrail.server")

API_KEY_HEADER = "X-Api-Key"
# Two 5 MB images (CompareFaces) in base64 and the JSON around them.
MAX_BODY = 16 * 1024 * 1024
# Larger bodies are still read (and dropped) up to this size, so that the client gets an answer
# instead of a reset connection; beyond it the connection is closed.
MAX_DRAIN = 256 * 1024 * 1024
_CREDENTIAL_REGION = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RekognitionHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Fail fast instead of silently sharing a port with another server.
    allow_reuse_address = False

    def __init__(
        self, address: tuple[str, int], service: RekognitionService, *, api_key: str = ""
    ) -> None:
        self.service = service
        self.api_key = api_key
        super().__init__(address, RekognitionHandler)

    @property
    def url(self) -> str:
        raw_host, port = self.server_address[:2]
        host = raw_host.decode() if isinstance(raw_host, bytes) else str(raw_host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"


class RekognitionHandler(BaseHTTPRequestHandler):
    # Keep-alive, as botocore's connection pool expects.
    protocol_version = "HTTP/1.1"
    server_version = "facetrail-serve"
    server: RekognitionHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        # A readiness probe; the protocol itself is POST only.
        self._send(200, {"service": "facetrail serve", "protocol": "Rekognition JSON 1.1"})

    def do_POST(self) -> None:
        request_id = str(uuid.uuid4())
        try:
            body = self._read_body()
            self._check_api_key()
            operation, params = self._decode(body)
            model = operation_model(operation)
            parsed = parse_input(model, params)
            response = self.server.service.handle(operation, parsed, self._region())
        except ServiceError as exc:
            if exc.status >= 500:
                log.error("%s: %s", exc.error_type, exc.message)
            self._send(exc.status, exc.body(), request_id)
            return
        except Exception:
            log.exception("request %s failed", request_id)
            error = ServiceError("InternalServerError", "internal error", status=500)
            self._send(500, error.body(), request_id)
            return
        self._send(200, response, request_id)

    def _read_body(self) -> bytes:
        raw_length = self.headers.get("Content-Length")
        if raw_length is None or not raw_length.isdigit():
            self.close_connection = True
            raise ServiceError("SerializationException", "Content-Length is required", status=411)
        length = int(raw_length)
        if length > MAX_BODY:
            if length > MAX_DRAIN:
                self.close_connection = True
            else:
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            raise ServiceError(
                "ImageTooLargeException",
                f"request of {length} bytes is larger than any valid request ({MAX_BODY} bytes)",
            )
        return self.rfile.read(length)

    def _check_api_key(self) -> None:
        key = self.server.api_key
        if not key:
            return
        given = self.headers.get(API_KEY_HEADER, "")
        if not hmac.compare_digest(given.encode(), key.encode()):
            raise ServiceError(
                "AccessDeniedException", f"missing or wrong {API_KEY_HEADER} header", status=403
            )

    def _decode(self, body: bytes) -> tuple[str, Any]:
        target = self.headers.get("X-Amz-Target", "")
        if not target.startswith(TARGET_PREFIX):
            raise ServiceError(
                "UnknownOperationException", f"expected X-Amz-Target: {TARGET_PREFIX}<Operation>"
            )
        operation = target[len(TARGET_PREFIX) :]
        if operation not in service_model().operation_names:
            raise ServiceError("UnknownOperationException", f"unknown operation {operation}")
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type not in {CONTENT_TYPE, "application/json"}:
            raise ServiceError("SerializationException", f"expected Content-Type: {CONTENT_TYPE}")
        try:
            params = json.loads(body) if body.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ServiceError("SerializationException", "the body is not valid JSON") from None
        return operation, params

    def _region(self) -> str:
        # Only used in ARNs: the region the client signed for, when it signed.
        match = _CREDENTIAL_REGION.search(self.headers.get("Authorization", ""))
        return match.group(1) if match else "local"

    def _send(self, status: int, payload: dict[str, Any], request_id: str = "") -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        if request_id:
            self.send_header("x-amzn-RequestId", request_id)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
