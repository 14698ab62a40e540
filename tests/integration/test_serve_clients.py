"""Three real Rekognition clients run one notebook flow against a live ``facetrail serve``.

boto3, the AWS CLI (``aws rekognition ...``) and the AWS SDK for JavaScript v3 (tests/js, run with
node) each detect and compare faces, create a tagged collection and retag it, index photos with
ExternalImageId, search, create users and associate faces with them, search users by image, page
through faces and users with MaxResults and NextToken, read an image from S3 (a real S3 server,
moto's) and meet the error cases. Each reaches the server through a recording proxy, so every
raw response body is checked against botocore's service model (patterns included), and no
request may be answered with an HTTP 500.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from facetrail.server.protocol import TARGET_PREFIX, operation_model
from facetrail.server.testing import serve_process
from tests.conftest import DATA, KNN, ROOT
from tests.integration.test_serve_protocol import shape_errors
from tests.s3server import CREDENTIALS, S3Server, s3_process

__all__ = ["s3_process"]  # a fixture

IMAGES = DATA / "face_recognition" / "tests" / "test_images"
GROUP = KNN / "test" / "obama_and_biden.jpg"
JS_DIR = ROOT / "tests" / "js"
CLIENT_ENV = {
    **CREDENTIALS,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_MAX_ATTEMPTS": "1",  # an error is reported, never retried away
    "AWS_RETRY_MODE": "standard",
}


# A recording proxy ------------------------------------------------------------------------------
@dataclass
class Exchange:
    operation: str
    status: int
    body: bytes


@dataclass
class Recording:
    upstream: str
    exchanges: list[Exchange] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _proxy_handler(recording: Recording) -> type[BaseHTTPRequestHandler]:
    host, port = recording.upstream.removeprefix("http://").rsplit(":", 1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the clients' pools expect

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            upstream = http.client.HTTPConnection(host, int(port), timeout=120)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                upstream.request("POST", self.path, body=body, headers=headers)
                reply = upstream.getresponse()
                data = reply.read()
                reply_headers = reply.getheaders()
                status = reply.status
            finally:
                upstream.close()
            target = self.headers.get("X-Amz-Target", "")
            with recording.lock:
                recording.exchanges.append(
                    Exchange(target.removeprefix(TARGET_PREFIX), status, data)
                )
            self.send_response(status)
            for name, value in reply_headers:
                if name.lower() not in {"content-length", "connection", "transfer-encoding"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def s3(s3_process: str) -> Iterator[tuple[S3Server, str]]:
    """The S3 server with a bucket holding one photo (``obama.jpg``)."""
    saved = {k: os.environ.get(k) for k in CLIENT_ENV}
    os.environ.update(CLIENT_ENV)
    try:
        server = S3Server(s3_process)
        bucket = server.bucket()
        server.client().put_object(
            Bucket=bucket, Key="photos/obama.jpg", Body=(IMAGES / "obama.jpg").read_bytes()
        )
        yield server, bucket
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def endpoint(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, s3: tuple[S3Server, str]
) -> Iterator[tuple[str, Recording]]:
    """A live ``facetrail serve`` reading S3Object images from the S3 server, and a recording
    proxy in front of it (the clients' endpoint)."""
    env = {**CLIENT_ENV, "FACETRAIL_S3_ENDPOINT_URL": s3[0].endpoint, "FACETRAIL_AWS_REGION": ""}
    home = tmp_path_factory.mktemp("serve-clients")
    with serve_process(home, models_dir=models_dir, env=env) as url:
        recording = Recording(url)
        proxy = ThreadingHTTPServer(("127.0.0.1", 0), _proxy_handler(recording))
        thread = threading.Thread(target=proxy.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{proxy.server_address[1]}", recording
        finally:
            proxy.shutdown()
            proxy.server_close()
            thread.join(10)


def check_exchanges(recording: Recording) -> list[str]:
    """Every recorded response conforms to botocore's model; returns the operations seen."""
    with recording.lock:
        exchanges = list(recording.exchanges)
        recording.exchanges.clear()
    for exchange in exchanges:
        body = json.loads(exchange.body or b"{}")
        assert exchange.status < 500, (exchange.operation, body)
        if exchange.status >= 300:
            assert set(body) == {"__type", "Message"}, body
            continue
        output = operation_model(exchange.operation).output_shape
        assert output is not None, exchange.operation
        errors = shape_errors(output, body)
        assert errors == [], f"{exchange.operation}: {errors}"
    return [e.operation for e in exchanges]


# The flow, once, for any client -----------------------------------------------------------------
class RefusedError(Exception):
    """The service answered with an error; ``code`` is its type as the client names it."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


# (operation, params) -> the response; images in params are {"Bytes": Path}.
Call = Callable[[str, dict[str, Any]], dict[str, Any]]


def error_of(call: Call, operation: str, params: dict[str, Any]) -> str:
    try:
        call(operation, params)
    except RefusedError as exc:
        return exc.code
    raise AssertionError(f"{operation} succeeded where it should have failed")


def notebook_flow(call: Call, prefix: str, bucket: str) -> dict[str, Any]:
    """What a face notebook does, through ``call``; returns what a reader would look at."""
    seen: dict[str, Any] = {}
    faces = call("DetectFaces", {"Image": {"Bytes": GROUP}, "Attributes": ["ALL"]})
    seen["group_faces"] = len(faces["FaceDetails"])
    compared = call(
        "CompareFaces",
        {
            "SourceImage": {"Bytes": IMAGES / "obama.jpg"},
            "TargetImage": {"Bytes": IMAGES / "obama2.jpg"},
            "SimilarityThreshold": 80,
        },
    )
    seen["compare_matches"] = len(compared["FaceMatches"])
    s3_object = {"S3Object": {"Bucket": bucket, "Name": "photos/obama.jpg"}}
    seen["s3_faces"] = len(call("DetectFaces", {"Image": s3_object})["FaceDetails"])

    # A tagged collection, retagged.
    collection = f"{prefix}-family"
    created = call(
        "CreateCollection",
        {"CollectionId": collection, "Tags": {"team": "équipe 1", "project": "album"}},
    )
    arn = created["CollectionArn"]
    seen["face_model_version"] = created["FaceModelVersion"]
    call("TagResource", {"ResourceArn": arn, "Tags": {"stage": "test"}})
    call("UntagResource", {"ResourceArn": arn, "TagKeys": ["project"]})
    seen["tags"] = call("ListTagsForResource", {"ResourceArn": arn})["Tags"]

    # Faces indexed with ExternalImageId, then searched.
    face_ids: dict[str, list[str]] = {}
    for name, photo in [("obama", "obama.jpg"), ("obama", "obama2.jpg"), ("biden", "biden.jpg")]:
        indexed = call(
            "IndexFaces",
            {
                "CollectionId": collection,
                "Image": {"Bytes": IMAGES / photo},
                "ExternalImageId": name,
                "MaxFaces": 1,
            },
        )
        face_ids.setdefault(name, []).extend(r["Face"]["FaceId"] for r in indexed["FaceRecords"])
    found = call(
        "SearchFacesByImage",
        {"CollectionId": collection, "Image": {"Bytes": IMAGES / "obama3.jpg"}, "MaxFaces": 5},
    )
    seen["search_top"] = found["FaceMatches"][0]["Face"]["ExternalImageId"]
    from_s3 = call("SearchFacesByImage", {"CollectionId": collection, "Image": s3_object})
    seen["s3_search_top"] = from_s3["FaceMatches"][0]["Face"]["ExternalImageId"]

    # Users: people whose faces are searched as one.
    for user in ("obama", "biden"):
        call("CreateUser", {"CollectionId": collection, "UserId": user})
        associated = call(
            "AssociateFaces",
            {"CollectionId": collection, "UserId": user, "FaceIds": face_ids[user]},
        )
        assert len(associated["AssociatedFaces"]) == len(face_ids[user]), associated
    by_image = call(
        "SearchUsersByImage",
        {"CollectionId": collection, "Image": {"Bytes": IMAGES / "obama3.jpg"}},
    )
    seen["user_top"] = [m["User"]["UserId"] for m in by_image["UserMatches"]]
    # A face of one user cannot become another's.
    refused = call(
        "AssociateFaces",
        {"CollectionId": collection, "UserId": "biden", "FaceIds": face_ids["obama"][:1]},
    )
    seen["refused"] = [r["Reasons"] for r in refused["UnsuccessfulFaceAssociations"]]
    seen["user_count"] = call("DescribeCollection", {"CollectionId": collection})["UserCount"]

    # Pages of one.
    users: list[str] = []
    page: dict[str, Any] = {"CollectionId": collection, "MaxResults": 1}
    while True:
        listed = call("ListUsers", page)
        users += [u["UserId"] for u in listed["Users"]]
        if "NextToken" not in listed:
            break
        page["NextToken"] = listed["NextToken"]
    seen["users"] = users
    pages, listed_faces = 0, []
    page = {"CollectionId": collection, "MaxResults": 1}
    while True:
        listed = call("ListFaces", page)
        pages += 1
        listed_faces += [f["ExternalImageId"] for f in listed["Faces"]]
        if "NextToken" not in listed:
            break
        page["NextToken"] = listed["NextToken"]
    seen["face_pages"], seen["faces"] = pages, sorted(listed_faces)
    user_faces = call("ListFaces", {"CollectionId": collection, "UserId": "biden"})["Faces"]
    seen["biden_faces"] = [f["UserId"] for f in user_faces]

    # Errors, as the service names them.
    seen["errors"] = {
        "missing collection": error_of(call, "DescribeCollection", {"CollectionId": "nope"}),
        "existing collection": error_of(call, "CreateCollection", {"CollectionId": collection}),
        "existing user": error_of(
            call, "CreateUser", {"CollectionId": collection, "UserId": "biden"}
        ),
        "missing user": error_of(call, "DeleteUser", {"CollectionId": collection, "UserId": "x"}),
        "reserved tag": error_of(
            call, "TagResource", {"ResourceArn": arn, "Tags": {"aws:owner": "me"}}
        ),
        "unknown resource": error_of(
            call, "ListTagsForResource", {"ResourceArn": arn.replace(collection, "nope")}
        ),
        "missing S3 object": error_of(
            call,
            "DetectFaces",
            {"Image": {"S3Object": {"Bucket": bucket, "Name": "photos/missing.jpg"}}},
        ),
        "not an image": error_of(call, "DetectFaces", {"Image": {"Bytes": ROOT / "README.md"}}),
        "bad token": error_of(
            call, "ListFaces", {"CollectionId": collection, "NextToken": "not-a-token"}
        ),
    }
    call("DeleteUser", {"CollectionId": collection, "UserId": "biden"})
    seen["users_left"] = [
        u["UserId"] for u in call("ListUsers", {"CollectionId": collection})["Users"]
    ]
    call("DeleteCollection", {"CollectionId": collection})
    return seen


def expected(prefix: str) -> dict[str, Any]:
    return {
        "group_faces": 3,
        "compare_matches": 1,
        "s3_faces": 1,
        "face_model_version": "8.2",
        "tags": {"team": "équipe 1", "stage": "test"},
        "search_top": "obama",
        "s3_search_top": "obama",
        "user_top": ["obama"],
        "refused": [["ASSOCIATED_TO_A_DIFFERENT_USER"]],
        "user_count": 2,
        "users": ["biden", "obama"],
        "face_pages": 3,
        "faces": ["biden", "obama", "obama"],
        "biden_faces": ["biden"],
        "errors": {
            "missing collection": "ResourceNotFoundException",
            "existing collection": "ResourceAlreadyExistsException",
            "existing user": "ConflictException",
            "missing user": "ResourceNotFoundException",
            "reserved tag": "InvalidParameterException",
            "unknown resource": "ResourceNotFoundException",
            "missing S3 object": "InvalidS3ObjectException",
            "not an image": "InvalidImageFormatException",
            "bad token": "InvalidPaginationTokenException",
        },
        "users_left": ["obama"],
    }


# The clients ------------------------------------------------------------------------------------
def _with_bytes(value: Any, convert: Callable[[Path], Any]) -> Any:
    if isinstance(value, Path):
        return convert(value)
    if isinstance(value, dict):
        return {k: _with_bytes(v, convert) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_bytes(v, convert) for v in value]
    return value


def test_boto3(endpoint: tuple[str, Recording], s3: tuple[S3Server, str]) -> None:
    url, recording = endpoint
    client = boto3.client(
        "rekognition",
        endpoint_url=url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )

    methods = {api: name for name, api in client.meta.method_to_api_mapping.items()}

    def call(operation: str, params: dict[str, Any]) -> dict[str, Any]:
        method = getattr(client, methods[operation])
        try:
            response: dict[str, Any] = method(**_with_bytes(params, Path.read_bytes))
        except ClientError as exc:
            raise RefusedError(exc.response["Error"]["Code"], str(exc)) from None
        response.pop("ResponseMetadata", None)
        return response

    assert notebook_flow(call, "boto3", s3[1]) == expected("boto3")
    assert "SearchUsersByImage" in check_exchanges(recording)


def _kebab(operation: str) -> str:
    from botocore import xform_name

    return xform_name(operation, "-")


def test_aws_cli(endpoint: tuple[str, Recording], s3: tuple[S3Server, str], tmp_path: Path) -> None:
    url, recording = endpoint
    aws = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
    assert aws, "the AWS CLI is missing: pip install -e '.[dev]' (awscli)"
    # Image members travel as the CLI's own --image-bytes / --source-image-bytes options.
    hoisted = {"Image": "--image-bytes", "SourceImage": "--source-image-bytes"}
    hoisted["TargetImage"] = "--target-image-bytes"

    def call(operation: str, params: dict[str, Any]) -> dict[str, Any]:
        options: list[str] = []
        rest = dict(params)
        for member, option in hoisted.items():
            image = rest.get(member)
            if isinstance(image, dict) and isinstance(image.get("Bytes"), Path):
                options += [option, f"fileb://{rest.pop(member)['Bytes']}"]
        request = tmp_path / "request.json"
        request.write_text(json.dumps(rest))
        command = [aws, "rekognition", _kebab(operation), "--cli-input-json"]
        command += [f"file://{request}", *options, "--endpoint-url", url]
        command += ["--region", "us-east-1", "--output", "json", "--no-paginate"]
        done = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, **CLIENT_ENV}, timeout=120
        )
        if done.returncode != 0:
            # "An error occurred (ResourceNotFoundException) when calling ..."
            text = done.stderr
            code = text.split("(", 1)[1].split(")", 1)[0] if "An error occurred (" in text else ""
            raise RefusedError(code or f"cli exit {done.returncode}", text)
        response: dict[str, Any] = json.loads(done.stdout or "{}")
        return response

    assert notebook_flow(call, "cli", s3[1]) == expected("cli")
    assert "SearchUsersByImage" in check_exchanges(recording)


def _node_modules() -> Path:
    """tests/js/node_modules, installed from its lockfile on first use (npm ci)."""
    npm, node = shutil.which("npm"), shutil.which("node")
    assert npm and node, (
        "node and npm are needed to test the AWS SDK for JavaScript v3 against facetrail serve: "
        "install Node.js 18+ (e.g. apt-get install nodejs npm)"
    )
    modules = JS_DIR / "node_modules"
    marker = modules / "@aws-sdk" / "client-rekognition" / "package.json"
    if not marker.exists():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"npm ci in {JS_DIR} failed:\n{done.stderr[-3000:]}"
    return modules


def test_javascript_sdk_v3(endpoint: tuple[str, Recording], s3: tuple[S3Server, str]) -> None:
    url, recording = endpoint
    _node_modules()
    node = shutil.which("node")
    assert node
    driver = subprocess.Popen(
        [node, str(JS_DIR / "driver.mjs"), url],
        cwd=JS_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **CLIENT_ENV},
    )
    assert driver.stdin is not None and driver.stdout is not None

    def call(operation: str, params: dict[str, Any]) -> dict[str, Any]:
        assert driver.stdin is not None and driver.stdout is not None
        request = _with_bytes(params, lambda path: {"$file": str(path)})
        driver.stdin.write(json.dumps({"operation": operation, "params": request}) + "\n")
        driver.stdin.flush()
        line = driver.stdout.readline()
        assert line, (
            f"the JavaScript driver stopped: {driver.stderr.read() if driver.stderr else ''}"
        )
        answer = json.loads(line)
        if "error" in answer:
            raise RefusedError(answer["error"], answer.get("message", ""))
        response: dict[str, Any] = answer["ok"]
        return response

    try:
        assert notebook_flow(call, "js", s3[1]) == expected("js")
    finally:
        driver.stdin.close()
        driver.wait(timeout=30)
    assert "SearchUsersByImage" in check_exchanges(recording)


def test_tags_on_create_are_validated_not_a_500(endpoint: tuple[str, Recording]) -> None:
    """Tag keys and values with letters of any script pass; what the model refuses is a 400."""
    url, recording = endpoint
    client = boto3.client(
        "rekognition",
        endpoint_url=url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    tags = {"Ünïcode-键": "値 ü", "a" * 128: "b" * 256}
    arn = client.create_collection(CollectionId="tagged", Tags=tags)["CollectionArn"]
    assert client.list_tags_for_resource(ResourceArn=arn)["Tags"] == tags
    for bad in ({"aws:x": "y"}, {"tab\tkey": "v"}, {"k": "v" * 257}):
        with pytest.raises(client.exceptions.InvalidParameterException):
            client.tag_resource(ResourceArn=arn, Tags=bad)
    client.delete_collection(CollectionId="tagged")
    operations = check_exchanges(recording)
    assert operations.count("TagResource") == 3
