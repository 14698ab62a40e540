"""What the rekognition backend adds to the contract: id mapping, image preparation, errors.

Live tests run the backend against `facetrail serve` (a thread in this process) through real
boto3; the error tests also use tiny stand-ins that answer every call with one service error.
"""

from __future__ import annotations

import io
import json
import shutil
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError
from PIL import Image

from facetrail.backends.rekognition.backend import (
    RekognitionBackend,
    translate_client_error,
)
from facetrail.backends.rekognition.ids import (
    EXTERNAL_ID_PATTERN,
    decode_external_id,
    encode_external_id,
)
from facetrail.backends.rekognition.images import MAX_IMAGE_BYTES, prepare_image
from facetrail.errors import (
    BackendError,
    BackendUnavailableError,
    CollectionExistsError,
    CollectionNotFoundError,
    ConfigurationError,
    FacetrailError,
    ImageTooLargeError,
    InvalidImageError,
    InvalidParameterError,
    NotFoundError,
    ThrottledError,
)
from facetrail.images import LoadedImage, decode_image, load_image
from facetrail.server import make_server
from facetrail.settings import Settings
from tests.conftest import DATA, KNN
from tests.served import Server, serving, url_of

IMAGES = DATA / "face_recognition" / "tests" / "test_images"
GROUP = KNN / "test" / "obama_and_biden.jpg"


def img(path: Path) -> LoadedImage:
    return load_image(str(path), max_bytes=40 << 20, max_pixels=50_000_000)


def from_bytes(data: bytes, source: str = "<test>") -> LoadedImage:
    return decode_image(data, source=source, max_bytes=40 << 20, max_pixels=50_000_000)


def encoded(image: Image.Image, fmt: str = "JPEG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials, and nothing from this machine's AWS configuration."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    for name in ["AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION"]:
        monkeypatch.delenv(name, raising=False)


def _serve(srv: Server) -> Iterator[str]:
    with serving(srv):
        yield url_of(srv)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[str]:
    settings = Settings(home=tmp_path_factory.mktemp("serve-home"), models_dir=models_dir)
    yield from _serve(make_server(settings, "127.0.0.1", 0))


@pytest.fixture
def rekognition(settings: Settings, endpoint: str, aws_env: None) -> Iterator[RekognitionBackend]:
    rec = RekognitionBackend(
        settings.with_(aws_endpoint_url=endpoint, aws_region="us-east-1", aws_max_attempts=2)
    )
    for name in rec.list_collections():
        rec.delete_collection(name)
    yield rec
    rec.close()


# External ids -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "external_id",
    [
        "obama",
        "rose_leslie",
        "x:y.z-1",
        "Rose Leslie",
        "김연아",
        "O'Brien/Jr.",
        "ft64:abc",
        "ft64:",
    ],
)
def test_external_ids_round_trip(external_id: str) -> None:
    stored = encode_external_id(external_id)
    assert EXTERNAL_ID_PATTERN.fullmatch(stored) and len(stored) <= 255
    assert decode_external_id(stored) == external_id
    # Ids the service accepts as they are stay readable in the AWS console.
    if EXTERNAL_ID_PATTERN.fullmatch(external_id) and not external_id.startswith("ft64:"):
        assert stored == external_id


def test_external_ids_from_elsewhere_pass_through() -> None:
    # Values another tool stored (or ours, damaged) are never mistaken for encoded ones.
    for foreign in ["ft64:!!", "ft64:abc", "ft64:" + "A" * 5, None]:
        assert decode_external_id(foreign) == foreign


def test_external_ids_too_long_to_encode_are_still_mapped() -> None:
    assert decode_external_id(encode_external_id("김" * 60)) == "김" * 60
    long_a, long_b = "김" * 100, "김" * 99 + "이"
    stored_a, stored_b = encode_external_id(long_a), encode_external_id(long_b)
    for stored in (stored_a, stored_b):
        assert EXTERNAL_ID_PATTERN.fullmatch(stored) and len(stored) <= 255
        assert stored.startswith("ft64h:")
    assert stored_a != stored_b  # distinct people stay distinct
    assert encode_external_id(long_a) == stored_a  # and the mapping is stable
    assert encode_external_id("ft64h:x") != "ft64h:x"  # never confused with a digest
    with pytest.raises(InvalidParameterError):
        encode_external_id("")


def test_external_ids_mapped_on_the_service(rekognition: RekognitionBackend, endpoint: str) -> None:
    rekognition.create_collection("people")
    names = {"Barack Obama": "obama.jpg", "조 바이든": "biden.jpg"}
    for name, photo in names.items():
        result = rekognition.index_faces("people", img(IMAGES / photo), external_id=name)
        assert result.indexed[0].external_id == name
    assert {f.external_id for f in rekognition.list_faces("people")} == set(names)
    found = rekognition.search_faces_by_image("people", img(IMAGES / "obama2.jpg"))
    assert found.matches[0].external_id == "Barack Obama"
    identified = rekognition.identify_faces("people", img(GROUP))
    best = {s.matches[0].external_id for s in identified if s.matches[0].similarity >= 80}
    assert best == set(names)

    # What the service stores matches its pattern.
    client = boto3.client("rekognition", endpoint_url=endpoint, region_name="us-east-1")
    stored = {f["ExternalImageId"] for f in client.list_faces(CollectionId="people")["Faces"]}
    assert all(EXTERNAL_ID_PATTERN.fullmatch(s) for s in stored)
    assert stored == {encode_external_id(n) for n in names}


# Images -----------------------------------------------------------------------------------------
def test_originals_are_sent_as_they_are() -> None:
    photo = img(IMAGES / "obama.jpg")
    assert prepare_image(photo) is photo.data
    png = from_bytes(encoded(photo.pixels, "PNG"))
    assert prepare_image(png) is png.data


def test_rotated_and_unsupported_images_are_reencoded_upright() -> None:
    upright = img(IMAGES / "obama.jpg").pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90 degrees clockwise
    rotated = from_bytes(encoded(upright.rotate(90, expand=True), exif=exif.tobytes()))
    assert rotated.pixels.size == upright.size  # decoding applied the EXIF orientation
    sent = Image.open(io.BytesIO(prepare_image(rotated)))
    assert sent.format == "JPEG" and sent.size == upright.size
    assert sent.getexif().get(0x0112) in (None, 1)

    webp = from_bytes(encoded(upright, "WEBP"))
    assert Image.open(io.BytesIO(prepare_image(webp))).format == "JPEG"


@pytest.fixture(scope="module")
def large_photo(tmp_path_factory: pytest.TempPathFactory) -> LoadedImage:
    """Obama at 3x, with sensor-like noise: well over the service's 5 MB."""
    photo = img(IMAGES / "obama.jpg").pixels
    big = photo.resize((photo.width * 3, photo.height * 3), Image.Resampling.BICUBIC)
    noise = np.random.default_rng(7).normal(0, 12, (big.height, big.width, 3))
    noisy = np.clip(np.asarray(big, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    data = encoded(Image.fromarray(noisy), quality=98)
    assert len(data) > MAX_IMAGE_BYTES
    return from_bytes(data, "large.jpg")


def test_large_images_are_downscaled_to_fit(
    large_photo: LoadedImage, rekognition: RekognitionBackend
) -> None:
    data = prepare_image(large_photo)
    assert len(data) <= MAX_IMAGE_BYTES
    sent = Image.open(io.BytesIO(data))
    assert sent.format == "JPEG"
    assert abs(sent.width / sent.height - large_photo.width / large_photo.height) < 0.01
    # The service (which refuses more than 5 MB) takes it, and finds the face where it is.
    faces = rekognition.detect_faces(large_photo)
    small = rekognition.detect_faces(img(IMAGES / "obama.jpg"))
    assert len(faces) == 1 and faces[0].box.iou(small[0].box) > 0.7


def test_tight_face_crops_are_enlarged_to_the_services_minimum(
    rekognition: RekognitionBackend,
) -> None:
    """A notebook's tight crop of one face (under 80 px) is sent enlarged, and found."""
    photo = img(IMAGES / "obama.jpg")
    (face,) = rekognition.detect_faces(photo)
    tight = photo.pixels.crop(face.box.to_pixels(photo.width, photo.height))
    small = tight.resize((60, round(60 * tight.height / tight.width)))
    crop = from_bytes(encoded(small))
    sent = Image.open(io.BytesIO(prepare_image(crop)))
    assert min(sent.size) == 80
    assert abs(sent.width / sent.height - small.width / small.height) < 0.05
    assert len(rekognition.detect_faces(crop)) == 1


# Errors -----------------------------------------------------------------------------------------
def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "message"},
            "ResponseMetadata": {
                "RequestId": "",
                "HostId": "",
                "HTTPStatusCode": status,
                "HTTPHeaders": {},
                "RetryAttempts": 0,
            },
        },
        "SearchFacesByImage",
    )


@pytest.mark.parametrize(
    ("code", "status", "expected", "retryable"),
    [
        ("ThrottlingException", 400, ThrottledError, True),
        ("ProvisionedThroughputExceededException", 400, ThrottledError, True),
        ("LimitExceededException", 400, ThrottledError, True),
        ("InternalServerError", 500, BackendUnavailableError, True),
        ("ServiceUnavailableException", 503, BackendUnavailableError, True),
        ("SomethingNew", 502, BackendUnavailableError, True),
        ("ResourceNotFoundException", 400, CollectionNotFoundError, False),
        ("ResourceAlreadyExistsException", 400, CollectionExistsError, False),
        ("InvalidParameterException", 400, InvalidParameterError, False),
        ("ValidationException", 400, InvalidParameterError, False),
        ("InvalidImageFormatException", 400, InvalidImageError, False),
        ("ImageTooLargeException", 400, ImageTooLargeError, False),
        ("AccessDeniedException", 400, ConfigurationError, False),
        ("ServiceQuotaExceededException", 400, BackendError, False),
    ],
)
def test_service_errors_become_ours(
    code: str, status: int, expected: type[FacetrailError], retryable: bool
) -> None:
    error = translate_client_error(client_error(code, status))
    assert type(error) is expected
    assert error.retryable is retryable
    assert code in error.message


class OneAnswer(BaseHTTPRequestHandler):
    """Answers every call with the error the server was built with, and counts calls."""

    protocol_version = "HTTP/1.1"
    server: Any

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.calls += 1
        body = json.dumps({"__type": self.server.error_type, "Message": "slow down"}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def one_answer(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any]]:
    srv: Any = ThreadingHTTPServer(("127.0.0.1", 0), OneAnswer)
    srv.error_type, srv.status = request.param
    srv.calls = 0
    for url in _serve(srv):
        yield url, srv


@pytest.mark.parametrize(
    ("one_answer", "expected"),
    [
        (("ThrottlingException", 400), ThrottledError),
        (("InternalServerError", 500), BackendUnavailableError),
    ],
    indirect=["one_answer"],
)
def test_transient_errors_retried_by_botocore_then_retryable(
    one_answer: tuple[str, Any],
    expected: type[FacetrailError],
    settings: Settings,
    aws_env: None,
) -> None:
    url, srv = one_answer
    rec = RekognitionBackend(
        settings.with_(
            aws_endpoint_url=url,
            aws_region="us-east-1",
            aws_retry_mode="standard",
            aws_max_attempts=3,
        )
    )
    with pytest.raises(expected) as caught:
        rec.describe_collection("c")
    assert caught.value.retryable
    assert srv.calls == 3  # botocore's own retries came first


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_endpoint_is_retryable(settings: Settings, aws_env: None) -> None:
    rec = RekognitionBackend(
        settings.with_(
            aws_endpoint_url=f"http://127.0.0.1:{_closed_port()}",
            aws_region="us-east-1",
            aws_max_attempts=1,
        )
    )
    with pytest.raises(BackendUnavailableError) as caught:
        rec.list_collections()
    assert caught.value.retryable


def test_missing_credentials_for_aws_is_a_configuration_error(
    settings: Settings, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    rec = RekognitionBackend(settings.with_(aws_region="eu-west-1"))
    with pytest.raises(ConfigurationError, match="credentials"):
        rec.list_collections()  # refused before anything is sent
    assert not ConfigurationError("x").retryable


def test_no_credentials_needed_for_facetrail_serve(
    settings: Settings, endpoint: str, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    rec = RekognitionBackend(settings.with_(aws_endpoint_url=endpoint))
    assert isinstance(rec.list_collections(), list)


def test_api_key_from_settings(
    settings: Settings, models_dir: Path, tmp_path: Path, aws_env: None
) -> None:
    server_settings = Settings(home=tmp_path / "keyed", models_dir=models_dir)
    for url in _serve(make_server(server_settings, "127.0.0.1", 0, api_key="k3y")):
        keyed = RekognitionBackend(settings.with_(aws_endpoint_url=url, serve_api_key="k3y"))
        assert keyed.list_collections() == []
        plain = RekognitionBackend(settings.with_(aws_endpoint_url=url))
        with pytest.raises(ConfigurationError, match="AccessDenied"):
            plain.list_collections()


# Searches ---------------------------------------------------------------------------------------
def test_identify_searches_each_face_on_its_own_crop(rekognition: RekognitionBackend) -> None:
    rekognition.create_collection("c")
    rekognition.index_faces("c", img(IMAGES / "obama.jpg"), external_id="obama")
    rekognition.index_faces("c", img(IMAGES / "biden.jpg"), external_id="biden")
    searched: list[str] = []
    rekognition.client.meta.events.register(
        "after-call.rekognition.SearchFacesByImage",
        lambda **kwargs: searched.append(kwargs["model"].name),
    )
    results = rekognition.identify_faces("c", img(GROUP))
    assert len(results) == 3 and len(searched) == 3
    # Faces in the order detected (largest first), each with the whole collection ranked.
    assert [r.face.box.area for r in results] == sorted(
        (r.face.box.area for r in results), reverse=True
    )
    best = [r.matches[0] for r in results if r.matches and r.matches[0].similarity >= 80]
    assert sorted(m.external_id or "" for m in best) == ["biden", "obama"]
    strict = rekognition.identify_faces("c", img(GROUP), threshold=80, max_matches=1)
    assert all(len(r.matches) <= 1 for r in strict)


def test_unknown_face_ids(rekognition: RekognitionBackend) -> None:
    rekognition.create_collection("c")
    face = rekognition.index_faces("c", img(IMAGES / "obama.jpg")).indexed[0]
    assert rekognition.search_faces("c", face.face_id) == []
    with pytest.raises(NotFoundError):
        rekognition.search_faces("c", "00000000-0000-0000-0000-000000000000")
    with pytest.raises(NotFoundError):
        rekognition.search_faces("c", "not-a-face-id")
    with pytest.raises(CollectionNotFoundError):
        rekognition.search_faces("missing", face.face_id)
    assert rekognition.delete_faces("c", ["not-a-face-id"]) == []
    with pytest.raises(InvalidParameterError):
        rekognition.create_collection("no spaces allowed")


def test_model_version_follows_the_collection(rekognition: RekognitionBackend) -> None:
    assert rekognition.model_version == "rekognition"  # nothing seen yet
    info = rekognition.create_collection("c")
    indexed = rekognition.index_faces("c", img(IMAGES / "obama.jpg"), external_id="o")
    assert rekognition.model_version == f"rekognition@{info.face_model_version}"
    assert indexed.indexed[0].model == rekognition.model_version
    assert indexed.indexed[0].crop_jpeg and indexed.indexed[0].embedding is None


# Jobs -------------------------------------------------------------------------------------------
def test_enroll_and_identify_jobs_on_rekognition(
    settings: Settings, endpoint: str, aws_env: None, tmp_path: Path
) -> None:
    from facetrail.api import Facetrail

    people = tmp_path / "people"
    for name, photo in {"Barack Obama": "obama.jpg", "조 바이든": "biden.jpg"}.items():
        (people / name).mkdir(parents=True)
        shutil.copy(IMAGES / photo, people / name / photo)
    ft = Facetrail(
        settings.with_(backend="rekognition", aws_endpoint_url=endpoint, aws_region="us-east-1")
    )
    enrolled = ft.enroll("band", people)
    assert enrolled["status"] == "succeeded", enrolled
    report = ft.identify("band", [str(GROUP)])
    assert report["status"] == "succeeded", report
    named = {f["person"] for f in report["images"][0]["faces"]} - {None}
    assert named == {"Barack Obama", "조 바이든"}
    # Deleting a person deletes their faces on the service too.
    ft.delete_person("band", "조 바이든")
    rec = RekognitionBackend(settings.with_(aws_endpoint_url=endpoint))
    assert [f.external_id for f in rec.list_faces("band")] == ["Barack Obama"]


def test_enrolled_people_are_users_on_rekognition(
    settings: Settings, endpoint: str, aws_env: None
) -> None:
    """Enrollment makes each person a user holding their faces (their name encoded into
    UserId's pattern); identification then searches users; re-runs, renames, merges and
    erasure keep the users in step with our people."""
    from facetrail.api import Facetrail
    from facetrail.backends import backend_for
    from facetrail.backends.rekognition.ids import USER_ID_PATTERN

    options = {"aws_region": "us-east-1"}
    ft = Facetrail(settings.with_(backend="rekognition", aws_endpoint_url=endpoint, **options))
    backend = backend_for(ft.settings, "rekognition", options)
    assert isinstance(backend, RekognitionBackend)
    calls: list[str] = []
    backend.client.meta.events.register(
        "before-call.rekognition", lambda model, **_: calls.append(model.name)
    )
    raw_user_ids: list[str] = []
    backend.client.meta.events.register(
        "provide-client-params.rekognition.CreateUser",
        lambda params, **_: raw_user_ids.append(params["UserId"]),
    )
    train = KNN / "train"
    photos = [
        (str(train / "obama" / "obama.jpg"), "Barack Obama"),
        (str(train / "obama" / "obama2.jpg"), "Barack Obama"),
        (str(train / "biden" / "biden.jpg"), "biden"),
    ]
    assert ft.enroll("band", photos)["status"] == "succeeded"
    rec = RekognitionBackend(settings.with_(aws_endpoint_url=endpoint))

    def users_faces() -> dict[str, list[str | None]]:
        faces: dict[str, list[str | None]] = {}
        for face in rec.list_faces("band"):
            faces.setdefault(face.external_id or "", []).append(face.user_id)
        return faces

    assert rec.list_users("band") == ["Barack Obama", "biden"]
    assert all(USER_ID_PATTERN.fullmatch(u) for u in raw_user_ids)
    assert users_faces() == {"Barack Obama": ["Barack Obama"] * 2, "biden": ["biden"]}

    calls.clear()
    report = ft.identify("band", [str(GROUP)])
    named = {f["person"] for f in report["images"][0]["faces"]} - {None}
    assert named == {"Barack Obama", "biden"}
    assert "SearchUsersByImage" in calls and "SearchFacesByImage" not in calls

    # Enrolling again: the users are there already, the new faces join them.
    assert ft.enroll("band", photos[2:])["status"] == "succeeded"
    assert rec.list_users("band") == ["Barack Obama", "biden"]
    assert set(users_faces()["biden"]) == {"biden"}

    # A rename moves the user; a merge folds one user into the other.
    ft.rename_person("band", "biden", new_external_id="joe")
    assert rec.list_users("band") == ["Barack Obama", "joe"]
    report = ft.identify("band", [str(GROUP)])
    assert {f["person"] for f in report["images"][0]["faces"]} - {None} == {"Barack Obama", "joe"}
    ft.merge_people("band", "joe", "Barack Obama")
    assert rec.list_users("band") == ["Barack Obama"]
    assert {f.user_id for f in rec.list_faces("band")} == {"Barack Obama"}

    # Erasure deletes the user with the person.
    ft.delete_person("band", "Barack Obama")
    assert rec.list_users("band") == []


def test_collections_enrolled_before_people_were_users_catch_up(
    settings: Settings, endpoint: str, aws_env: None
) -> None:
    """A collection whose people have no users (enrolled by an earlier version) gets every
    person's user at the next enrollment, so that searching users misses nobody."""
    from facetrail.api import Facetrail

    ft = Facetrail(
        settings.with_(backend="rekognition", aws_endpoint_url=endpoint, aws_region="us-east-1")
    )
    train = KNN / "train"
    enrolled = ft.enroll(
        "old",
        [
            (str(train / "obama" / "obama.jpg"), "obama"),
            (str(train / "biden" / "biden.jpg"), "biden"),
        ],
    )
    assert enrolled["status"] == "succeeded"
    rec = RekognitionBackend(settings.with_(aws_endpoint_url=endpoint))
    for user in rec.list_users("old"):  # as an earlier version left it
        rec.delete_user("old", user)
    # A rename there makes no user: one user would hide everyone else from identification.
    ft.rename_person("old", "obama", new_external_id="barack")
    assert rec.list_users("old") == []
    assert ft.enroll("old", [(str(train / "biden" / "biden2.jpg"), "biden")])["status"] == (
        "succeeded"
    )
    assert rec.list_users("old") == ["barack", "biden"]
    users = {f.face_id: f.user_id for f in rec.list_faces("old")}
    assert sorted(users.values(), key=str) == ["barack", "biden", "biden"]
    report = ft.identify("old", [str(GROUP)])
    assert {f["person"] for f in report["images"][0]["faces"]} - {None} == {"barack", "biden"}


def test_users_take_face_ids_in_batches_of_100(rekognition: RekognitionBackend) -> None:
    rekognition.create_collection("c")
    face = rekognition.index_faces("c", img(IMAGES / "obama.jpg"), external_id="o").indexed[0]
    rekognition.create_user("c", "o")
    sizes: list[int] = []
    rekognition.client.meta.events.register(
        "provide-client-params.rekognition.AssociateFaces",
        lambda params, **_: sizes.append(len(params["FaceIds"])),
    )
    missing = [f"00000000-0000-0000-0000-{i:012d}" for i in range(150)]
    result = rekognition.associate_faces("c", "o", [face.face_id, *missing], threshold=0)
    assert sizes == [100, 51]
    assert result.associated == [face.face_id]
    assert set(result.refused) == set(missing)
    assert set(result.refused.values()) == {"FACE_NOT_FOUND"}


def test_user_ids_fit_the_services_pattern() -> None:
    from facetrail.backends.rekognition.ids import USER_ID_PATTERN, encode_user_id

    for name in ["obama", "Rose Leslie", "김연아", "x" * 128, "x" * 129, "김" * 200]:
        stored = encode_user_id(name)
        assert USER_ID_PATTERN.fullmatch(stored) and len(stored) <= 128
        # Decodable unless hashed (then identification matches it by encoding the name again).
        if not stored.startswith("ft64h:"):
            assert decode_external_id(stored) == name
    assert RekognitionBackend(Settings()).user_match_id("김" * 200) == encode_user_id("김" * 200)
    assert RekognitionBackend(Settings()).user_match_id("Rose Leslie") == "Rose Leslie"
