"""`facetrail serve` against hostile callers: real servers on loopback, raw sockets and boto3.

Fuzzed request bodies never get a 5xx; the API key and the body limit are checked before the
body is read; slow headers and slow bodies are cut off; excess image work is answered with
ThrottlingException while the server's memory stays under its documented ceiling.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest
from botocore.config import Config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from facetrail.server import RekognitionHTTPServer, make_server
from facetrail.server.testing import serve_process
from facetrail.settings import Settings
from tests.conftest import DATA
from tests.served import serving

IMAGES = DATA / "face_recognition" / "tests" / "test_images"
JSON_TYPE = "application/x-amz-json-1.1"
FACE_ID = "11111111-2222-3333-4444-555555555555"
# Per inference slot, over the server's idle RSS with its models loaded, at the default 25 MP
# cap (docs/security.md: about 150 MiB measured per slot).
SLOT_CEILING_MIB = 256


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path
) -> Iterator[RekognitionHTTPServer]:
    settings = Settings(
        home=tmp_path_factory.mktemp("limits-home"),
        models_dir=models_dir,
        serve_header_timeout=1.5,
        serve_body_timeout=1.5,
        serve_max_image_pixels=4_000_000,
        s3_endpoint_url="http://127.0.0.1:9",  # S3Object inputs: nothing answers there
    )
    with serving(make_server(settings, "127.0.0.1", 0, api_key="k3y")) as srv:
        yield srv


def post(
    srv: RekognitionHTTPServer,
    operation: str,
    body: bytes,
    *,
    key: str = "k3y",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=60)
    try:
        sent = {"X-Amz-Target": f"RekognitionService.{operation}", "Content-Type": JSON_TYPE}
        sent.update({"X-Api-Key": key} if key else {})
        sent.update(headers or {})
        conn.request("POST", "/", body=body, headers=sent)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels in a few bytes (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 4096, 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def image_body(data: bytes, **extra: Any) -> bytes:
    return json.dumps({"Image": {"Bytes": base64.b64encode(data).decode()}, **extra}).encode()


# Request shapes that used to be answered with HTTP 500 ---------------------------------------
DEEP = b'{"Image":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
NESTED = b'{"MaxResults":' + b"[" * 40 + b"]" * 40 + b"}"


def search(threshold: str) -> bytes:
    return f'{{"CollectionId":"c","FaceId":"{FACE_ID}","FaceMatchThreshold":{threshold}}}'.encode()


@pytest.mark.parametrize(
    ("operation", "body", "error"),
    [
        ("DetectFaces", image_body(png_header(100_000, 100_000)), "ImageTooLargeException"),
        ("DetectFaces", image_body(png_header(7000, 7000)), "ImageTooLargeException"),
        ("DetectLabels", image_body(png_header(3000, 3000)), "ImageTooLargeException"),
        ("DetectFaces", DEEP, "SerializationException"),
        ("ListCollections", NESTED, "SerializationException"),
        ("ListCollections", b'{"MaxResults": 1' + b"0" * 5000 + b"}", "SerializationException"),
        ("ListCollections", b'{"MaxResults": 1e999}', "SerializationException"),
        ("SearchFaces", search("NaN"), "SerializationException"),
        ("SearchFaces", search("-Infinity"), "SerializationException"),
        ("SearchFaces", search("101"), "InvalidParameterException"),
        ("ListCollections", b'{"NextToken": "\\u00b2"}', "InvalidPaginationTokenException"),
        ("ListCollections", b"\xff\xfe{", "SerializationException"),
        ("ListCollections", b"[1, 2]", "SerializationException"),
    ],
)  # fmt: skip
def test_hostile_bodies_get_4xx(
    server: RekognitionHTTPServer, operation: str, body: bytes, error: str
) -> None:
    status, payload = post(server, operation, body)
    assert (status, payload["__type"]) == (400, error), payload


def test_nan_threshold_from_boto3_is_refused(server: RekognitionHTTPServer) -> None:
    client = boto3.client(
        "rekognition",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )

    def add_key(request: Any, **_: Any) -> None:
        request.headers["X-Api-Key"] = "k3y"

    client.meta.events.register("before-sign.rekognition.*", add_key)
    client.create_collection(CollectionId="nan")
    face = client.index_faces(
        CollectionId="nan", Image={"Bytes": (IMAGES / "obama.jpg").read_bytes()}
    )
    face_id = face["FaceRecords"][0]["Face"]["FaceId"]
    # botocore's range check lets NaN through (NaN < 0 is false) and sends it as "NaN".
    with pytest.raises(client.exceptions.InvalidParameterException, match="be a number"):
        client.search_faces(CollectionId="nan", FaceId=face_id, FaceMatchThreshold=float("nan"))
    with pytest.raises(client.exceptions.ClientError) as caught:
        client.search_faces(CollectionId="nan", FaceId=face_id, FaceMatchThreshold=float("inf"))
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert client.search_faces(CollectionId="nan", FaceId=face_id)["SearchedFaceId"] == face_id


# Before the body ---------------------------------------------------------------------------------
def _raw_request(
    srv: RekognitionHTTPServer, head: str, timeout: float = 5.0
) -> tuple[bytes, float]:
    """Send request headers announcing a body that never comes; the answer and its delay."""
    with socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=timeout) as sock:
        start = time.monotonic()
        sock.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return answer, time.monotonic() - start


def _head(key: str, length: int, operation: str = "DetectFaces") -> str:
    return (
        f"POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: RekognitionService.{operation}\r\n"
        f"Content-Type: {JSON_TYPE}\r\nX-Api-Key: {key}\r\nContent-Length: {length}\r\n\r\n"
    )


def test_key_is_checked_before_the_body(server: RekognitionHTTPServer) -> None:
    answer, elapsed = _raw_request(server, _head("wrong", 1 << 30))
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert b"AccessDeniedException" in answer and elapsed < 2.0


def test_body_limit_is_checked_before_the_body(server: RekognitionHTTPServer) -> None:
    answer, elapsed = _raw_request(server, _head("k3y", 1 << 30))
    assert answer.startswith(b"HTTP/1.1 400") and b"ImageTooLargeException" in answer
    answer, _ = _raw_request(server, _head("k3y", 2 << 20, "ListCollections"))
    assert answer.startswith(b"HTTP/1.1 400") and b"SerializationException" in answer
    assert elapsed < 2.0


def test_streamed_body_over_the_limit_is_refused(server: RekognitionHTTPServer) -> None:
    chunks = (b" " * 65536 for _ in range(40))  # 2.5 MiB, chunked: no Content-Length
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    headers = {"X-Amz-Target": "RekognitionService.ListCollections", "Content-Type": JSON_TYPE}
    try:
        conn.request("POST", "/", body=chunks, headers={**headers, "X-Api-Key": "k3y"})
        response = conn.getresponse()
        assert response.status == 400
        assert json.loads(response.read())["__type"] == "SerializationException"
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused and closed while the client was still sending: also not read
    finally:
        conn.close()


# Timeouts ----------------------------------------------------------------------------------------
def _closed_after(sock: socket.socket, trickle: bytes, limit: float) -> float:
    """Send ``trickle`` a byte every 0.2 s until the server closes; seconds until it did."""
    start = time.monotonic()
    sock.setblocking(False)
    for byte in trickle:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - start
        except BlockingIOError:
            pass
        except ConnectionResetError:
            return time.monotonic() - start
        try:
            sock.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - start
        if time.monotonic() - start > limit:
            break
        time.sleep(0.2)
    return float("inf")


def test_slow_headers_are_cut_off(server: RekognitionHTTPServer) -> None:
    # Slowloris: many connections, each sending its headers a byte at a time.
    trickle = b"POST / HTTP/1.1\r\nHost: localhost\r\n" + b"X-Padding: " + b"a" * 200
    socks = [
        socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5)
        for _ in range(20)
    ]
    try:
        closed = [0.0] * len(socks)
        threads = [
            threading.Thread(
                target=lambda i=i: closed.__setitem__(i, _closed_after(socks[i], trickle, 8))
            )
            for i in range(len(socks))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    finally:
        for sock in socks:
            sock.close()
    # serve_header_timeout is 1.5 s here; the trickle would take 50 s.
    assert max(closed) < 4.0, closed
    # The server still answers.
    assert post(server, "ListCollections", b"{}")[0] == 200


def test_slow_body_is_cut_off(server: RekognitionHTTPServer) -> None:
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as sock:
        start = time.monotonic()
        sock.sendall(_head("k3y", 100, "ListCollections").encode() + b"{")
        answer = sock.recv(65536)
        elapsed = time.monotonic() - start
        while data := sock.recv(65536):  # the rest of the answer; the server then closes
            answer += data
    assert answer.startswith(b"HTTP/1.1 408") and b"RequestTimeoutException" in answer
    assert 1.0 < elapsed < 4.0


# Fuzzing ----------------------------------------------------------------------------------------
ARN = "arn:aws:rekognition:us-east-1:000000000000:collection/c"
OPERATIONS = [
    "CreateCollection", "DescribeCollection", "ListCollections", "DeleteCollection",
    "IndexFaces", "ListFaces", "DeleteFaces", "SearchFaces", "SearchFacesByImage",
    "DetectFaces", "CompareFaces", "DetectLabels", "DetectText", "DetectModerationLabels",
    "RecognizeCelebrities", "GetCelebrityInfo", "DetectCustomLabels", "NoSuchOperation",
    "TagResource", "UntagResource", "ListTagsForResource", "CreateUser", "DeleteUser",
    "ListUsers", "AssociateFaces", "DisassociateFaces", "SearchUsers", "SearchUsersByImage",
]  # fmt: skip
MEMBERS = [
    "CollectionId", "FaceId", "FaceIds", "ExternalImageId", "MaxFaces", "MaxResults",
    "NextToken", "FaceMatchThreshold", "SimilarityThreshold", "Attributes", "QualityFilter",
    "MinConfidence", "MaxLabels", "Features", "Settings", "Filters", "Id", "Image",
    "SourceImage", "TargetImage", "HumanLoopConfig", "ProjectVersionArn",
    "Tags", "TagKeys", "ResourceArn", "UserId", "UserMatchThreshold", "MaxUsers",
]  # fmt: skip


def _small_images() -> list[bytes]:
    out = []
    for fmt, size in [("JPEG", (120, 120)), ("PNG", (90, 200)), ("GIF", (100, 100))]:
        buf = io.BytesIO()
        Image.new("RGB", size, (200, 120, 90)).save(buf, fmt)
        out.append(buf.getvalue())
    face = Image.open(IMAGES / "obama.jpg").convert("RGB").resize((160, 200))
    buf = io.BytesIO()
    face.save(buf, "JPEG")
    return [*out, buf.getvalue(), png_header(9000, 9000), b"\xff\xd8\xff\xe0garbage"]


SMALL_IMAGES = _small_images()
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(
        ["", "c", FACE_ID, "ALL", "DEFAULT", "AUTO", "1", "x" * 300, "\u00b2", "\ud800"]
    )
    | st.sampled_from([ARN, ARN + "x", "aws:key", "équipe 1"])
)
images = st.sampled_from(SMALL_IMAGES).map(
    lambda b: {"Bytes": base64.b64encode(b).decode()}
) | st.sampled_from(
    [{"S3Object": {"Bucket": "b", "Name": "k.jpg"}}, {"S3Object": {"Bucket": "", "Version": "1"}}]
)
values = st.recursive(
    scalars | images,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
json_bodies = st.dictionaries(st.sampled_from(MEMBERS), values, max_size=6).map(
    lambda d: json.dumps(d).encode()
)
raw_bodies = st.binary(max_size=300) | st.sampled_from(
    [b"NaN", b"{", b'{"a":1e400}', b"-0", b'"\\ud800"', b'{"CollectionId":"\\ud800"}', b"\x00" * 10]
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operation=st.sampled_from(OPERATIONS), body=json_bodies | raw_bodies)
def test_fuzzed_bodies_never_get_5xx(
    server: RekognitionHTTPServer, operation: str, body: bytes
) -> None:
    status, payload = post(server, operation, body)
    assert status < 500, (status, payload)
    if status >= 400:
        assert isinstance(payload.get("__type"), str) and isinstance(payload.get("Message"), str)


# Concurrency and memory -----------------------------------------------------------------------
def test_excess_image_work_is_throttled_within_a_memory_ceiling(
    tmp_path: Path, models_dir: Path
) -> None:
    photo = Image.open(IMAGES / "obama.jpg").convert("RGB").resize((5000, 5000))  # 25 MP: the cap
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=80)
    body = image_body(buf.getvalue())
    slots = 2
    env = {"FACETRAIL_SERVE_MAX_INFERENCE": str(slots), "FACETRAIL_SERVE_QUEUE_TIMEOUT": "0"}
    with serve_process(tmp_path / "serve", models_dir=models_dir, env=env) as url:
        port = int(url.rsplit(":", 1)[1])
        proc = next(
            p
            for p in psutil.Process().children()
            if f"{tmp_path}" in " ".join(p.environ().values())
        )

        def detect(results: list[tuple[int, str]]) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            headers = {"X-Amz-Target": "RekognitionService.DetectFaces", "Content-Type": JSON_TYPE}
            conn.request("POST", "/", body=body, headers=headers)
            response = conn.getresponse()
            results.append((response.status, json.loads(response.read()).get("__type", "")))
            conn.close()

        warm: list[tuple[int, str]] = []
        detect(warm)  # loads the models
        assert warm == [(200, "")]
        idle = proc.memory_info().rss
        peak, done = idle, threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, proc.memory_info().rss)
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        results: list[tuple[int, str]] = []
        clients = [threading.Thread(target=detect, args=(results,)) for _ in range(slots + 6)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(180)
        done.set()
        sampler.join()
    throttled = results.count((400, "ThrottlingException"))
    assert len(results) == slots + 6 and throttled >= 1, results
    assert results.count((200, "")) + throttled == len(results), results
    assert (peak - idle) / 2**20 < slots * SLOT_CEILING_MIB, (idle, peak)


@pytest.mark.parametrize(
    ("method", "headers", "status", "error"),
    [
        ("PUT", {}, 405, "UnknownOperationException"),
        ("DELETE", {}, 405, "UnknownOperationException"),
        ("POST", {"X-Amz-Target": "Other.ListCollections"}, 400, "UnknownOperationException"),
        ("POST", {"Content-Type": "text/plain"}, 400, "SerializationException"),
        ("POST", {"X-Api-Key": ""}, 403, "AccessDeniedException"),
    ],
)
def test_other_request_shapes_get_json_errors(
    server: RekognitionHTTPServer, method: str, headers: dict[str, str], status: int, error: str
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    sent = {
        "X-Amz-Target": "RekognitionService.ListCollections",
        "Content-Type": JSON_TYPE,
        "X-Api-Key": "k3y",
    }
    try:
        conn.request(method, "/any/path", body=b"{}", headers={**sent, **headers})
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())["__type"]) == (status, error)
    finally:
        conn.close()


def test_botocore_retries_throttled_requests(tmp_path: Path, models_dir: Path) -> None:
    settings = Settings(
        home=tmp_path, models_dir=models_dir, serve_max_inference=1, serve_queue_timeout=0
    )
    with serving(make_server(settings, "127.0.0.1", 0)) as srv:
        client = boto3.client(
            "rekognition",
            endpoint_url=srv.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "max_attempts": 10}),
        )
        photo = (IMAGES / "obama.jpg").read_bytes()
        answers: list[int] = []
        retried: list[int] = []

        def detect() -> None:
            response = client.detect_faces(Image={"Bytes": photo})
            answers.append(len(response["FaceDetails"]))
            retried.append(response["ResponseMetadata"]["RetryAttempts"])

        threads = [threading.Thread(target=detect) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert answers == [1, 1, 1, 1]
        assert sum(retried) >= 1  # some were throttled, then served


def test_access_log_records_hold_no_headers_or_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A record that fails to format is printed whole: it must not carry the key or secrets."""
    from hypercorn.config import Config

    from facetrail.server.http import _AccessLogger

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret-value")
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/",
        "query_string": b"",
        "client": ("127.0.0.1", 5000),
        "headers": [(b"x-api-key", b"k3y-value")],
    }
    response = {"status": 200, "headers": [(b"content-length", b"2")]}
    atoms = _AccessLogger(Config()).atoms(scope, response, 0.01)
    text = repr(atoms)
    assert "k3y-value" not in text and "s3cret-value" not in text
    assert atoms["s"] == "200" and atoms["r"] == "POST / 1.1"
