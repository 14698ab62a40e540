"""HTTP for ``facetrail serve``: POST / with X-Amz-Target, JSON in and out, on Hypercorn.

A Starlette app served by Hypercorn (ASGI, HTTP/1.1 keep-alive as botocore's pool expects).
Every request is checked cheapest first, before a byte of its body is read: the API key (when
one is set, in ``X-Api-Key``; signatures are not checked), the operation and Content-Type, the
declared body size, and a slot: an operation that carries an image takes one of
``serve_max_inference`` slots (waiting at most ``serve_queue_timeout``), any request one of
``serve_max_requests``; without one it is answered ``ThrottlingException``, which botocore
retries. The body is then read against its size limit and ``serve_body_timeout``, parsed as
strict JSON (no NaN or Infinity, bounded numbers and depth), checked against botocore's service
model, and its images' sizes are read from their headers before anything decodes them. Every
refusal is a JSON error body as the service sends it, never an HTTP 500.

Hypercorn closes a connection whose request headers are not complete within
``serve_header_timeout`` (its idle timer runs from the connection's start until the headers are
in), and caps their size (16 KiB).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import io
import ipaddress
import json
import logging
import math
import os
import re
import socket
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Any

import anyio
from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.logging import Logger
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from facetrail.server.protocol import (
    CONTENT_TYPE,
    TARGET_PREFIX,
    ServiceError,
    operation_model,
    parse_input,
    service_model,
)
from facetrail.server.service import RekognitionService
from facetrail.settings import Settings

log = logging.getLogger("facetrail.server")

API_KEY_HEADER = "X-Api-Key"
# Requests without an image are small (4096 face ids are 150 KB of JSON).
MAX_PLAIN_BODY = 1024 * 1024
# No Rekognition input nests deeper than a few levels; JSON nested deeper is refused.
MAX_JSON_DEPTH = 32
# Integers in this API are 32-bit, floats ordinary decimals: longer literals are refused.
MAX_INTEGER_DIGITS = 18
MAX_FLOAT_CHARS = 64
THROTTLED = "Rate exceeded: facetrail serve is at its limit of concurrent requests; retry later"
# The service's image formats, as Pillow opens them (an MPO opens through the JPEG plugin).
PROBE_FORMATS = ("JPEG", "PNG")
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
_CREDENTIAL_REGION = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeLimits:
    """The limits of one server, from the ``serve_*`` settings (their defaults live there)."""

    max_body_bytes: int
    max_image_pixels: int
    max_inference: int
    queue_timeout: float
    max_requests: int
    header_timeout: float
    body_timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ServeLimits:
        return cls(
            max_body_bytes=max(1, settings.serve_max_body_bytes),
            max_image_pixels=max(1, settings.serve_max_image_pixels),
            max_inference=max(1, settings.serve_max_inference),
            queue_timeout=_seconds(settings.serve_queue_timeout, 0.0),
            max_requests=max(1, settings.serve_max_requests),
            header_timeout=_seconds(settings.serve_header_timeout, 0.1),
            body_timeout=_seconds(settings.serve_body_timeout, 0.1),
        )


def _seconds(value: float, least: float) -> float:
    return value if math.isfinite(value) and value >= least else least


@functools.cache
def image_operations() -> frozenset[str]:
    """Operations whose input carries an image (a member of the service model's Image shape)."""
    model = service_model()
    names = set()
    for name in model.operation_names:
        shape = model.operation_model(name).input_shape
        if shape is not None and any(m.name == "Image" for m in shape.members.values()):
            names.add(name)
    return frozenset(names)


# Strict JSON ---------------------------------------------------------------------------------
def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number in JSON")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise ValueError("integer out of range")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text) if len(text) <= MAX_FLOAT_CHARS else math.inf
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def strict_json(body: bytes) -> Any:
    """The JSON value of ``body`` (``{}`` when empty); SerializationException when malformed,
    nested deeper than MAX_JSON_DEPTH, or holding NaN, Infinity or out-of-range numbers."""
    if not body.strip():
        return {}
    try:
        value = json.loads(
            body,
            parse_constant=_refuse_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except RecursionError:
        raise ServiceError("SerializationException", "the JSON body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError and the refusals above
        reason = str(exc) if not isinstance(exc, json.JSONDecodeError) else "not valid JSON"
        raise ServiceError("SerializationException", f"the body is not valid: {reason}") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise ServiceError("SerializationException", "the JSON body is nested too deeply")
    return value


# Images: sizes from headers, before the service decodes them --------------------------------
def check_image_sizes(params: dict[str, Any], max_pixels: int) -> None:
    """Refuse an image larger than ``max_pixels`` (or a decompression bomb) from its header."""
    for member, value in params.items():
        data = value.get("Bytes") if isinstance(value, dict) else None
        if not isinstance(data, bytes) or not data:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                # Only the formats the service takes: no other decoder sees untrusted headers.
                with Image.open(io.BytesIO(data), formats=PROBE_FORMATS) as probe:
                    width, height = probe.size
        except Image.DecompressionBombError:
            width, height = max_pixels + 1, 1
        except Exception:  # any failure to read a header: what the service says of it
            raise ServiceError(
                "InvalidImageFormatException", "Request has invalid image format"
            ) from None
        if width * height > max_pixels:
            raise ServiceError(
                "ImageTooLargeException",
                f"{member} has too many pixels ({width}x{height}); facetrail serve takes at "
                f"most {max_pixels} (FACETRAIL_SERVE_MAX_IMAGE_PIXELS)",
            )


# The app -------------------------------------------------------------------------------------
def _json_response(
    status: int, payload: dict[str, Any], request_id: str, *, close: bool = False
) -> Response:
    headers = {"x-amzn-RequestId": request_id}
    if close:
        headers["Connection"] = "close"
    data = json.dumps(payload, separators=(",", ":")).encode()
    return Response(data, status_code=status, headers=headers, media_type=CONTENT_TYPE)


class RekognitionApp:
    """The ASGI app: one route for every path, POST for operations and GET for readiness."""

    def __init__(self, service: RekognitionService, *, api_key: str, limits: ServeLimits) -> None:
        self.service = service
        self.api_key = api_key
        self.limits = limits
        self.in_flight = 0
        # Created on first use, inside the serving event loop.
        self._inference: asyncio.Semaphore | None = None
        self._threads: anyio.CapacityLimiter | None = None
        self.starlette = Starlette(routes=[Route("/{path:path}", self.endpoint, methods=METHODS)])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.starlette(scope, receive, send)

    async def endpoint(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        if request.method in {"GET", "HEAD"}:
            # A readiness probe; the protocol itself is POST only.
            ready = {"service": "facetrail serve", "protocol": "Rekognition JSON 1.1"}
            return _json_response(200, ready, request_id)
        try:
            if request.method != "POST":
                raise ServiceError(
                    "UnknownOperationException", "the Rekognition protocol is POST only", 405
                )
            return await self._post(request, request_id)
        except ServiceError as exc:
            if exc.status >= 500:
                log.error("%s: %s", exc.error_type, exc.message)
            # An unread body would be taken for the next request: close the connection.
            return _json_response(exc.status, exc.body(), request_id, close=True)
        except Exception:
            log.exception("request %s failed", request_id)
            error = ServiceError("InternalServerError", "internal error", status=500)
            return _json_response(500, error.body(), request_id, close=True)

    async def _post(self, request: Request, request_id: str) -> Response:
        self._check_api_key(request)
        operation = self._operation(request)
        heavy = operation in image_operations()
        limit = self.limits.max_body_bytes if heavy else MAX_PLAIN_BODY
        declared = request.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise self._too_large(int(declared), limit, heavy)
        if self.in_flight >= self.limits.max_requests:
            raise ServiceError("ThrottlingException", THROTTLED)
        self.in_flight += 1
        try:
            if not heavy:
                return await self._answer(request, request_id, operation, limit)
            slots = await self._take_slot()
            try:
                return await self._answer(request, request_id, operation, limit)
            finally:
                slots.release()
        finally:
            self.in_flight -= 1

    async def _answer(
        self, request: Request, request_id: str, operation: str, limit: int
    ) -> Response:
        body = await self._read_body(request, limit, heavy=limit > MAX_PLAIN_BODY)
        region = self._region(request)
        if self._threads is None:
            self._threads = anyio.CapacityLimiter(self.limits.max_requests)
        response = await anyio.to_thread.run_sync(
            self._handle, operation, body, region, limiter=self._threads
        )
        return _json_response(200, response, request_id)

    def _handle(self, operation: str, body: bytes, region: str) -> dict[str, Any]:
        # In a worker thread: parsing, base64 and header probes are CPU work too.
        parsed = parse_input(operation_model(operation), strict_json(body))
        check_image_sizes(parsed, self.limits.max_image_pixels)
        return self.service.handle(operation, parsed, region)

    async def _take_slot(self) -> asyncio.Semaphore:
        """An inference slot, waited for at most ``queue_timeout``; ThrottlingException if none."""
        if self._inference is None:
            self._inference = asyncio.Semaphore(self.limits.max_inference)
        slots = self._inference
        if not slots.locked():
            await slots.acquire()  # free: returns at once
            return slots
        if self.limits.queue_timeout <= 0:
            raise ServiceError("ThrottlingException", THROTTLED)
        try:
            await asyncio.wait_for(slots.acquire(), self.limits.queue_timeout)
        except TimeoutError:
            raise ServiceError("ThrottlingException", THROTTLED) from None
        return slots

    @staticmethod
    def _too_large(size: int, limit: int, heavy: bool) -> ServiceError:
        message = f"request of {size} bytes is larger than any valid request ({limit} bytes)"
        return ServiceError(
            "ImageTooLargeException" if heavy else "SerializationException", message
        )

    async def _read_body(self, request: Request, limit: int, *, heavy: bool) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:  # a chunked body, or more than Content-Length said
                        raise self._too_large(size, limit, heavy)
                    chunks.append(chunk)
        except TimeoutError:
            raise ServiceError(
                "RequestTimeoutException",
                f"the request body did not arrive within {self.limits.body_timeout:g} s",
                status=408,
            ) from None
        except ClientDisconnect:
            raise ServiceError("SerializationException", "the client went away") from None
        return b"".join(chunks)

    def _check_api_key(self, request: Request) -> None:
        if not self.api_key:
            return
        given = request.headers.get(API_KEY_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.api_key.encode()):
            raise ServiceError(
                "AccessDeniedException", f"missing or wrong {API_KEY_HEADER} header", status=403
            )

    @staticmethod
    def _operation(request: Request) -> str:
        target = request.headers.get("X-Amz-Target", "")
        if not target.startswith(TARGET_PREFIX):
            raise ServiceError(
                "UnknownOperationException", f"expected X-Amz-Target: {TARGET_PREFIX}<Operation>"
            )
        operation = target[len(TARGET_PREFIX) :]
        if operation not in service_model().operation_names:
            raise ServiceError("UnknownOperationException", f"unknown operation {operation}")
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if content_type not in {CONTENT_TYPE, "application/json"}:
            raise ServiceError("SerializationException", f"expected Content-Type: {CONTENT_TYPE}")
        return operation

    @staticmethod
    def _region(request: Request) -> str:
        # Only used in ARNs: the region the client signed for, when it signed.
        match = _CREDENTIAL_REGION.search(request.headers.get("Authorization", ""))
        return match.group(1) if match else "local"


# The server ----------------------------------------------------------------------------------
class _AccessLogger(Logger):
    """Hypercorn's logger, with access-log atoms that hold no request header or environment
    variable: a record that fails to format is printed whole, and those would include the API
    key and any credentials in the environment."""

    def atoms(self, request: Any, response: Any, request_time: float) -> dict[str, str]:
        atoms = super().atoms(request, response, request_time)
        return {key: value for key, value in atoms.items() if not key.startswith("{")}


class RekognitionHTTPServer:
    """A bound socket and the app on Hypercorn: ``serve_forever`` (in any thread) until
    ``shutdown``; ``server_close`` releases the port. ``url`` is known once constructed."""

    def __init__(
        self,
        address: tuple[str, int],
        service: RekognitionService,
        *,
        api_key: str = "",
        limits: ServeLimits | None = None,
    ) -> None:
        self.service = service
        self.limits = limits or ServeLimits.from_settings(service.settings)
        self.app = RekognitionApp(service, api_key=api_key, limits=self.limits)
        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Bound and listening now, so that the port is known and taken before serving starts.
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
        # without it a response written in two parts waits for the client's delayed ACK.
        self.socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.socket.bind((host, port))
            self.socket.listen(128)
        except OSError:
            self.socket.close()
            raise
        self.server_address: tuple[Any, ...] = self.socket.getsockname()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), self.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def config(self) -> Config:
        config = Config()
        config.logger_class = _AccessLogger
        # Hypercorn's idle timer runs from a connection's start until its request headers are
        # complete, and between requests: the header timeout and the keep-alive time in one.
        config.keep_alive_timeout = self.limits.header_timeout
        config.graceful_timeout = 3.0
        config.accesslog = log
        config.errorlog = log
        config.access_log_format = '%(h)s "%(r)s" %(s)s %(b)s'
        config.include_server_header = False
        # The listening socket is ours; Hypercorn serves a duplicate it may close.
        config.bind = [f"fd://{os.dup(self.socket.fileno())}"]
        return config

    async def serve(self, *, stop_on_signals: bool = False) -> None:
        """Serve in the running event loop until ``shutdown`` (or SIGINT/SIGTERM if asked)."""
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._loop = loop
        self._stopped.clear()
        if stop_on_signals:
            import signal

            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, self._stop.set)
        self._started.set()
        try:
            await serve(self.app, self.config(), shutdown_trigger=self._stop.wait, mode="asgi")
        finally:
            self._started.clear()
            self._stopped.set()

    def serve_forever(self) -> None:
        asyncio.run(self.serve())

    def shutdown(self, timeout: float = 15.0) -> None:
        """Stop ``serve_forever`` (from another thread) and wait for it to return."""
        if not self._started.wait(timeout=min(timeout, 5.0)):
            return
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        deadline = time.monotonic() + timeout
        self._stopped.wait(max(0.0, deadline - time.monotonic()))

    def server_close(self) -> None:
        self.socket.close()
