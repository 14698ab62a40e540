"""`facetrail serve` as boto3 sees it: real boto3 clients, a live server, botocore's service model.

Every response body is checked against the operation's output shape in botocore's model for
Rekognition (names, types, required members, ranges, enums, patterns, and no member the model
lacks).
"""

from __future__ import annotations

import contextlib
import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.model import ListShape, MapShape, Shape, StringShape, StructureShape
from PIL import Image

from facetrail.errors import ConfigurationError
from facetrail.modelfiles import model_path
from facetrail.server import RekognitionHTTPServer, make_server
from facetrail.server.protocol import matches_pattern
from facetrail.settings import Settings
from tests.conftest import DATA, KNN
from tests.served import rekognition_client, serving

IMAGES = DATA / "face_recognition" / "tests" / "test_images"
GROUP = KNN / "test" / "obama_and_biden.jpg"
NO_FACE = DATA / "dlib" / "dlib" / "test" / "ffmpeg_data" / "eagle.jpg"
NO_S3 = "http://127.0.0.1:9"  # the discard port: nothing answers there
MODEL = botocore.session.get_session().get_service_model("rekognition")
# What DetectFaces returns here for DEFAULT; ALL adds what the attribute models measure, and
# nothing else (no Eyeglasses, Beard...).
MEASURED = {"BoundingBox", "Landmarks", "Pose", "Quality", "Confidence"}
ATTRIBUTES = {"AgeRange", "Gender", "Emotions", "Smile", "MouthOpen", "EyesOpen", "EyeDirection"}


# A validator over botocore's service model ------------------------------------------------------
def shape_errors(shape: Shape, value: Any, path: str = "$") -> list[str]:
    """Where the raw JSON ``value`` departs from ``shape``; empty when it conforms."""
    kind = shape.type_name
    meta = shape.metadata
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            return [f"{path}: expected an object for {shape.name}"]
        errors = [
            f"{path}.{k}: not a member of {shape.name}" for k in value if k not in shape.members
        ]
        errors += [f"{path}.{k}: required" for k in shape.required_members if k not in value]
        for key, item in value.items():
            if key in shape.members:
                errors += shape_errors(shape.members[key], item, f"{path}.{key}")
        return errors
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        errors = _range(len(value), meta, path)
        for i, item in enumerate(value):
            errors += shape_errors(shape.member, item, f"{path}[{i}]")
        return errors
    if isinstance(shape, MapShape):
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        errors = []
        for key, item in value.items():
            errors += shape_errors(shape.key, key, f"{path}<key {key!r}>")
            errors += shape_errors(shape.value, item, f"{path}.{key}")
        return errors
    if isinstance(shape, StringShape) or kind == "string":
        if not isinstance(value, str):
            return [f"{path}: expected a string"]
        enum = getattr(shape, "enum", [])
        errors = [f"{path}: {value!r} not in {enum}"] if enum and value not in enum else []
        expression = meta.get("pattern")
        if expression and not matches_pattern(expression, value):
            errors.append(f"{path}: {value!r} does not match {expression}")
        return errors + _range(len(value), meta, path)
    if kind in {"integer", "long"}:
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{path}: expected an integer"]
        return _range(value, meta, path)
    if kind in {"float", "double"}:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return [f"{path}: expected a number"]
        return _range(value, meta, path)
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean"]
    if kind == "timestamp":
        # JSON 1.1 sends epoch seconds.
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected epoch seconds"]
    if kind == "blob":
        return [] if isinstance(value, str) else [f"{path}: expected base64"]
    return [f"{path}: unchecked type {kind}"]


def _range(value: float, meta: dict[str, Any], path: str) -> list[str]:
    errors = []
    if "min" in meta and value < meta["min"]:
        errors.append(f"{path}: {value} < min {meta['min']}")
    if "max" in meta and value > meta["max"]:
        errors.append(f"{path}: {value} > max {meta['max']}")
    return errors


def test_validator_catches_departures() -> None:
    shape = MODEL.operation_model("SearchFacesByImage").output_shape
    assert shape is not None
    face_id = "0f0e7c3c-8a0b-4d3e-9b52-6b1d2c3e4f50"
    good = {"FaceMatches": [{"Similarity": 99.0, "Face": {"FaceId": face_id, "Confidence": 99.0}}]}
    assert shape_errors(shape, good) == []
    bad = {"FaceMatches": [{"Similarity": 101, "Face": {"Confidence": "high"}}], "Extra": 1}
    assert len(shape_errors(shape, bad)) == 3
    # Patterns, Unicode property classes (TagKey's \p{L}) included, and map keys.
    version = {"FaceModelVersion": "7.0", "FaceMatches": [{"Face": {"FaceId": "not-a-face-id"}}]}
    assert [e.split(":")[0] for e in shape_errors(shape, version)] == [
        "$.FaceMatches[0].Face.FaceId"
    ]
    tags = MODEL.operation_model("ListTagsForResource").output_shape
    assert tags is not None
    assert shape_errors(tags, {"Tags": {"équipe": "Ünïcode 1"}}) == []
    assert len(shape_errors(tags, {"Tags": {"aws:reserved": "x", "ok": "tab\t"}})) == 2


# A live server and clients ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[str]:
    # S3Object inputs are read from an endpoint where nothing listens: unreadable objects.
    settings = Settings(
        home=tmp_path_factory.mktemp("serve-home"),
        models_dir=models_dir,
        s3_endpoint_url=NO_S3,
    )
    with _served(make_server(settings, "127.0.0.1", 0)) as url:
        yield url


@contextlib.contextmanager
def _served(srv: RekognitionHTTPServer) -> Iterator[str]:
    with serving(srv):
        yield srv.url


class Recorder:
    """Checks every raw response body against its output shape (errors: __type and Message)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, http_response: Any, model: Any, **_: Any) -> None:
        body = json.loads(http_response.content or b"{}")
        self.calls.append(model.name)
        if http_response.status_code >= 300:
            assert set(body) == {"__type", "Message"}, body
            return
        errors = shape_errors(model.output_shape, body)
        assert errors == [], f"{model.name}: {errors}"
        matches = body.get("FaceMatches", [])
        similarities = [m["Similarity"] for m in matches]
        assert similarities == sorted(similarities, reverse=True), model.name


def client_for(endpoint: str, **config: Any) -> Any:
    """A Rekognition client whose every response is checked against its shape."""
    client = rekognition_client(endpoint, **config)
    recorder = Recorder()
    client.meta.events.register("after-call.rekognition.*", recorder)
    client.recorder = recorder
    return client


@pytest.fixture
def client(server: str) -> Iterator[Any]:
    """A client on a server with no collections (the server lives for the module)."""
    rekognition = client_for(server)
    for name in rekognition.list_collections()["CollectionIds"]:
        rekognition.delete_collection(CollectionId=name)
    rekognition.recorder.calls.clear()
    yield rekognition


def read(path: Path) -> bytes:
    return path.read_bytes()


# A notebook's flow, unchanged but for endpoint_url -----------------------------------------------
def test_notebook_flow(client: Any) -> None:
    group = read(GROUP)
    faces = client.detect_faces(Image={"Bytes": group}, Attributes=["ALL"])["FaceDetails"]
    assert len(faces) == 3  # Biden, Obama, and a girl at the edge
    for face in faces:
        assert set(face) == MEASURED | ATTRIBUTES
        types = [lm["Type"] for lm in face["Landmarks"]]
        assert types[:5] == ["eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight"]
        # ALL adds the face mesh's 23 further types and the iris model's pupils: every one of
        # the service's 30 types, once each.
        assert len(types) == 30 == len(set(types))
        landmark_type = MODEL.shape_for("LandmarkType")
        assert isinstance(landmark_type, StringShape)
        assert set(types) == set(landmark_type.enum)

    same = client.compare_faces(
        SourceImage={"Bytes": read(IMAGES / "obama.jpg")},
        TargetImage={"Bytes": read(IMAGES / "obama2.jpg")},
        SimilarityThreshold=80,
    )
    assert len(same["FaceMatches"]) == 1 and same["FaceMatches"][0]["Similarity"] >= 80
    assert "BoundingBox" in same["SourceImageFace"]

    created = client.create_collection(CollectionId="family")
    assert created["StatusCode"] == 200 and created["FaceModelVersion"]
    for name, photo in [("obama", IMAGES / "obama.jpg"), ("biden", IMAGES / "biden.jpg")]:
        indexed = client.index_faces(
            CollectionId="family",
            Image={"Bytes": read(photo)},
            ExternalImageId=name,
            MaxFaces=1,
            QualityFilter="AUTO",
            DetectionAttributes=["ALL"],
        )
        assert len(indexed["FaceRecords"]) == 1
        assert indexed["FaceRecords"][0]["Face"]["ExternalImageId"] == name
    described = client.describe_collection(CollectionId="family")
    assert described["FaceCount"] == 2 and described["CreationTimestamp"].year >= 2024

    # Search each face of the group photo on its own crop, as SearchFacesByImage only ever
    # searches with the largest face of an image.
    picture = Image.open(io.BytesIO(group))
    width, height = picture.size
    named = []
    for face in faces:
        box = face["BoundingBox"]
        left, top = int(box["Left"] * width), int(box["Top"] * height)
        right = int((box["Left"] + box["Width"]) * width)
        bottom = int((box["Top"] + box["Height"]) * height)
        buffer = io.BytesIO()
        picture.crop((left, top, right, bottom)).save(buffer, "JPEG")
        try:
            found = client.search_faces_by_image(
                CollectionId="family",
                Image={"Bytes": buffer.getvalue()},
                FaceMatchThreshold=80,
                MaxFaces=5,
            )
        except client.exceptions.InvalidParameterException:
            continue  # no face found in the crop
        named += [m["Face"]["ExternalImageId"] for m in found["FaceMatches"]]
    assert sorted(named) == ["biden", "obama"]

    assert client.delete_collection(CollectionId="family")["StatusCode"] == 200
    assert "family" not in client.list_collections()["CollectionIds"]
    assert len(client.recorder.calls) == 11


def test_faces_in_a_collection(client: Any) -> None:
    client.create_collection(CollectionId="c")
    ids = {}
    for name in ["obama", "biden"]:
        record = client.index_faces(
            CollectionId="c", Image={"Bytes": read(IMAGES / f"{name}.jpg")}, ExternalImageId=name
        )["FaceRecords"][0]["Face"]
        ids[name] = record["FaceId"]
    client.index_faces(CollectionId="c", Image={"Bytes": read(IMAGES / "obama2.jpg")})

    # Pagination: one face per page, three pages, the same faces as one page.
    pages = client.get_paginator("list_faces").paginate(
        CollectionId="c", PaginationConfig={"PageSize": 1}
    )
    paged = [face for page in pages for face in page["Faces"]]
    assert len(paged) == 3
    assert paged == client.list_faces(CollectionId="c")["Faces"]
    only = client.list_faces(CollectionId="c", FaceIds=[ids["biden"]])["Faces"]
    assert [f["ExternalImageId"] for f in only] == ["biden"]
    assert {f.get("ExternalImageId") for f in paged} == {"obama", "biden", None}

    by_id = client.search_faces(CollectionId="c", FaceId=ids["obama"], FaceMatchThreshold=0)
    assert by_id["SearchedFaceId"] == ids["obama"]
    matched = [m["Face"]["FaceId"] for m in by_id["FaceMatches"]]
    assert ids["obama"] not in matched and len(matched) == 2
    # The other photo of Obama resembles him more than Biden does.
    assert by_id["FaceMatches"][0]["Face"].get("ExternalImageId") is None

    unknown = "00000000-0000-0000-0000-000000000000"
    deleted = client.delete_faces(CollectionId="c", FaceIds=[ids["obama"], unknown])
    assert deleted["DeletedFaces"] == [ids["obama"]]
    assert deleted["UnsuccessfulFaceDeletions"] == [
        {"FaceId": unknown, "Reasons": ["FACE_NOT_FOUND"]}
    ]
    assert client.describe_collection(CollectionId="c")["FaceCount"] == 2

    listed = client.list_collections(MaxResults=1)
    assert listed["CollectionIds"] == ["c"] and len(listed["FaceModelVersions"]) == 1


def test_collections_of_an_earlier_release_keep_their_model(
    tmp_path: Path, models_dir: Path
) -> None:
    """A server upgraded to other default models still searches the collections made before
    with the models that built them, and new collections get the new ones."""
    home = tmp_path / "home"
    earlier = Settings(home=home, models_dir=models_dir, detector="mtcnn", embedder="mobilefacenet")
    with _served(make_server(earlier, "127.0.0.1", 0)) as url:
        old = client_for(url)
        assert old.create_collection(CollectionId="band")["FaceModelVersion"] == "7.0"
        for name in ["obama", "biden"]:
            old.index_faces(
                CollectionId="band",
                Image={"Bytes": read(IMAGES / f"{name}.jpg")},
                ExternalImageId=name,
            )
    with _served(make_server(Settings(home=home, models_dir=models_dir), "127.0.0.1", 0)) as url:
        new = client_for(url)
        found = new.search_faces_by_image(
            CollectionId="band", Image={"Bytes": read(IMAGES / "obama2.jpg")}, FaceMatchThreshold=80
        )
        assert found["FaceModelVersion"] == "7.0"
        assert [m["Face"]["ExternalImageId"] for m in found["FaceMatches"]] == ["obama"]
        added = new.index_faces(CollectionId="band", Image={"Bytes": read(IMAGES / "obama3.jpg")})
        assert added["FaceRecords"][0]["Face"]["IndexFacesModelVersion"] == "7.0"
        assert new.create_collection(CollectionId="fans")["FaceModelVersion"] == "8.2"
        versions = new.list_collections()["FaceModelVersions"]
        assert sorted(versions) == ["7.0", "8.2"]


def test_a_collection_whose_models_are_missing_is_refused_with_a_400(
    tmp_path: Path, models_dir: Path
) -> None:
    """A collection made with models this server lacks (MTCNN's files here) is refused with
    InvalidParameterException naming them, not an internal error."""
    home = tmp_path / "home"
    earlier = Settings(home=home, models_dir=models_dir, detector="mtcnn", embedder="mobilefacenet")
    with _served(make_server(earlier, "127.0.0.1", 0)) as url:
        old = client_for(url)
        old.create_collection(CollectionId="band")
        old.index_faces(CollectionId="band", Image={"Bytes": read(IMAGES / "obama.jpg")})
    only_default = tmp_path / "models"
    only_default.mkdir()
    for name in ("retinaface", "onet", "mobilefacenet"):
        source = model_path(Settings(models_dir=models_dir), name)
        (only_default / source.name).symlink_to(source)
    now = Settings(home=home, models_dir=only_default)
    with _served(make_server(now, "127.0.0.1", 0)) as url:
        new = client_for(url)
        with pytest.raises(ClientError) as refused:
            new.search_faces_by_image(
                CollectionId="band", Image={"Bytes": read(IMAGES / "obama2.jpg")}
            )
    error = refused.value.response["Error"]
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Code"] == "InvalidParameterException"
    assert "mtcnn-tflite/mobilefacenet-192" in error["Message"]
    assert "not installed" in error["Message"]


def test_compare_faces_unmatched_and_threshold(client: Any) -> None:
    strict = client.compare_faces(
        SourceImage={"Bytes": read(IMAGES / "obama.jpg")},
        TargetImage={"Bytes": read(GROUP)},
    )
    # Default SimilarityThreshold is 80: Obama matches, Biden and the girl do not.
    assert len(strict["FaceMatches"]) == 1 and len(strict["UnmatchedFaces"]) == 2
    loose = client.compare_faces(
        SourceImage={"Bytes": read(IMAGES / "obama.jpg")},
        TargetImage={"Bytes": read(GROUP)},
        SimilarityThreshold=0,
    )
    assert len(loose["FaceMatches"]) == 3 and loose["UnmatchedFaces"] == []


def test_png_and_unsigned_requests(server: str, client: Any) -> None:
    # Signatures are not checked: an unsigned client works too.
    unsigned = client_for(server, signature_version=botocore.UNSIGNED)
    buffer = io.BytesIO()
    Image.open(IMAGES / "obama.jpg").save(buffer, "PNG")
    faces = unsigned.detect_faces(Image={"Bytes": buffer.getvalue()})["FaceDetails"]
    assert len(faces) == 1


# Errors, as the exception classes boto3 users catch ---------------------------------------------
def test_collection_errors(client: Any) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_collection(CollectionId="missing")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.delete_collection(CollectionId="missing")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.search_faces_by_image(
            CollectionId="missing", Image={"Bytes": read(IMAGES / "obama.jpg")}
        )
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.list_faces(CollectionId="missing")
    client.create_collection(CollectionId="c")
    with pytest.raises(client.exceptions.ResourceAlreadyExistsException):
        client.create_collection(CollectionId="c")


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("create_collection", {"CollectionId": "has space"}),
        ("create_collection", {"CollectionId": "x" * 256}),
        ("index_faces", {"CollectionId": "c", "ExternalImageId": "Rose Leslie"}),
        ("index_faces", {"CollectionId": "c", "ExternalImageId": "김연아"}),
        ("search_faces_by_image", {"CollectionId": "c", "MaxFaces": 4097}),
        ("search_faces_by_image", {"CollectionId": "c", "FaceMatchThreshold": 100.5}),
        ("search_faces", {"CollectionId": "c", "FaceId": "not-a-face-id"}),
        ("compare_faces", {"SimilarityThreshold": 150}),
        ("detect_faces", {"Attributes": ["EVERYTHING"]}),
        ("list_faces", {"CollectionId": "c", "MaxResults": 5000}),
    ],
)
def test_invalid_parameters(client: Any, operation: str, params: dict[str, Any]) -> None:
    client.create_collection(CollectionId="c")
    photo = {"Bytes": read(IMAGES / "obama.jpg")}
    if operation in {"index_faces", "search_faces_by_image", "detect_faces"}:
        params = {"Image": photo, **params}
    if operation == "compare_faces":
        params = {"SourceImage": photo, "TargetImage": photo, **params}
    with pytest.raises(client.exceptions.InvalidParameterException) as caught:
        getattr(client, operation)(**params)
    assert "failed to satisfy constraint" in str(caught.value)


def test_minimums_checked_by_the_server(server: str, client: Any) -> None:
    # botocore checks minimums itself; without its check the server refuses them the same way.
    unchecked = client_for(server, parameter_validation=False)
    unchecked.create_collection(CollectionId="c")
    with pytest.raises(unchecked.exceptions.InvalidParameterException):
        unchecked.search_faces_by_image(
            CollectionId="c", Image={"Bytes": read(IMAGES / "obama.jpg")}, MaxFaces=0
        )
    with pytest.raises(unchecked.exceptions.InvalidParameterException):
        unchecked.describe_collection(CollectionId="")
    with pytest.raises(unchecked.exceptions.InvalidParameterException):
        unchecked.describe_collection()


def test_image_errors(client: Any) -> None:
    client.create_collection(CollectionId="c")
    with pytest.raises(client.exceptions.ImageTooLargeException):
        client.detect_faces(Image={"Bytes": b"\xff\xd8" + bytes(5 * 1024 * 1024)})
    # Far larger: refused from its length, and still answered (not a reset connection).
    with pytest.raises(client.exceptions.ImageTooLargeException):
        client.detect_faces(Image={"Bytes": bytes(13 * 1024 * 1024)})
    gif = io.BytesIO()
    Image.new("RGB", (200, 200)).save(gif, "GIF")
    for data in [gif.getvalue(), b"not an image at all", read(IMAGES / "obama.jpg")[:5000]]:
        with pytest.raises(client.exceptions.InvalidImageFormatException):
            client.index_faces(CollectionId="c", Image={"Bytes": data})
    # Smaller than 80x80 is answered (tight face crops are); smaller than a face can be is not.
    small, tiny = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (60, 200)).save(small, "JPEG")
    assert client.detect_faces(Image={"Bytes": small.getvalue()})["FaceDetails"] == []
    Image.new("RGB", (12, 200)).save(tiny, "JPEG")
    with pytest.raises(client.exceptions.InvalidParameterException, match="20x20"):
        client.detect_faces(Image={"Bytes": tiny.getvalue()})
    with pytest.raises(client.exceptions.InvalidS3ObjectException, match=r"photo\.jpg"):
        client.detect_faces(Image={"S3Object": {"Bucket": "photos", "Name": "photo.jpg"}})
    # No face: DetectFaces answers with none, searches and comparisons with an error.
    assert client.detect_faces(Image={"Bytes": read(NO_FACE)})["FaceDetails"] == []
    assert client.index_faces(CollectionId="c", Image={"Bytes": read(NO_FACE)})["FaceRecords"] == []
    with pytest.raises(client.exceptions.InvalidParameterException, match="no faces"):
        client.search_faces_by_image(CollectionId="c", Image={"Bytes": read(NO_FACE)})
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.compare_faces(
            SourceImage={"Bytes": read(NO_FACE)}, TargetImage={"Bytes": read(IMAGES / "obama.jpg")}
        )


def test_protocol_errors(server: str, client: Any) -> None:
    with pytest.raises(client.exceptions.InvalidPaginationTokenException):
        client.list_collections(NextToken="not-a-token")
    with pytest.raises(ClientError) as caught:
        client.detect_protective_equipment(Image={"Bytes": read(IMAGES / "obama.jpg")})
    assert caught.value.response["Error"]["Code"] == "UnknownOperationException"
    # Not base64: what a hand-written client might send.
    request = urllib.request.Request(
        server,
        data=json.dumps({"Image": {"Bytes": "***"}}).encode(),
        headers={
            "X-Amz-Target": "RekognitionService.DetectFaces",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as http_error:
        urllib.request.urlopen(request, timeout=30)
    assert http_error.value.code == 400
    assert json.loads(http_error.value.read())["__type"] == "SerializationException"


# The API key ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[str]:
    settings = Settings(home=tmp_path_factory.mktemp("keyed-home"), models_dir=models_dir)
    with _served(make_server(settings, "127.0.0.1", 0, api_key="s3cret")) as url:
        yield url


def test_api_key_required_when_set(keyed_server: str) -> None:
    plain = client_for(keyed_server)
    with pytest.raises(plain.exceptions.AccessDeniedException):
        plain.list_collections()

    keyed = client_for(keyed_server)

    def add_api_key(request: Any, **_: Any) -> None:  # as docs/rekognition.md shows
        request.headers["X-Api-Key"] = "s3cret"

    keyed.meta.events.register("before-sign.rekognition.*", add_api_key)
    assert keyed.list_collections()["CollectionIds"] == []

    def wrong_key(request: Any, **_: Any) -> None:
        request.headers["X-Api-Key"] = "guess"

    wrong = client_for(keyed_server)
    wrong.meta.events.register("before-sign.rekognition.*", wrong_key)
    with pytest.raises(wrong.exceptions.AccessDeniedException):
        wrong.list_collections()


def test_beyond_localhost_needs_a_key(tmp_path: Path, models_dir: Path) -> None:
    settings = Settings(home=tmp_path / "home", models_dir=models_dir)
    with pytest.raises(ConfigurationError, match="API key"):
        make_server(settings, "0.0.0.0", 0)
