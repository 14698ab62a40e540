"""The contract every Recognizer backend honours. New backends join the ``recognizer`` fixture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facetrail.backends import backend_class
from facetrail.backends.base import LANDMARK_TYPES, Recognizer
from facetrail.errors import CollectionExistsError, CollectionNotFoundError, NoFaceError
from facetrail.images import LoadedImage, load_image
from facetrail.migrate import ensure_schema
from facetrail.settings import Settings
from tests.conftest import DATA

IMAGES = DATA / "face_recognition" / "tests" / "test_images"
NO_FACE = DATA / "dlib" / "dlib" / "test" / "ffmpeg_data" / "eagle.jpg"
TWO_PEOPLE = DATA / "face_recognition" / "examples" / "two_people.jpg"


def img(path: object) -> LoadedImage:
    return load_image(str(path), max_bytes=40 << 20, max_pixels=50_000_000)


@pytest.fixture(scope="module")
def serve_endpoint(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[str]:
    """A live `facetrail serve` (subprocess, own SQLite home) for the rekognition backend."""
    from facetrail.server.testing import serve_process

    with serve_process(tmp_path_factory.mktemp("serve"), models_dir=models_dir) as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "rekognition"])
def recognizer(
    request: pytest.FixtureRequest, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Recognizer]:
    ensure_schema(settings)
    if request.param == "rekognition":
        # The rekognition backend, unchanged, pointed at facetrail serve instead of AWS.
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        endpoint = request.getfixturevalue("serve_endpoint")
        settings = settings.with_(aws_endpoint_url=endpoint, aws_region="us-east-1")
    rec = backend_class(request.param)(settings)
    # The server lives for the module: every test starts from no collections, as locally.
    for name in rec.list_collections():
        rec.delete_collection(name)
    yield rec
    rec.close()


def test_collection_lifecycle(recognizer: Recognizer) -> None:
    info = recognizer.create_collection("people")
    assert info.collection_id == "people" and info.face_count == 0
    assert info.face_model_version
    with pytest.raises(CollectionExistsError):
        recognizer.create_collection("people")
    assert "people" in recognizer.list_collections()
    assert recognizer.ensure_collection("people").collection_id == "people"
    recognizer.delete_collection("people")
    assert "people" not in recognizer.list_collections()
    with pytest.raises(CollectionNotFoundError):
        recognizer.describe_collection("people")
    with pytest.raises(CollectionNotFoundError):
        recognizer.delete_collection("people")


def test_detect_faces_shape(recognizer: Recognizer) -> None:
    faces = recognizer.detect_faces(img(TWO_PEOPLE))
    assert len(faces) == 2
    for face in faces:
        box = face.box
        assert 0 <= box.left < 1 and 0 <= box.top < 1
        assert 0 < box.width <= 1 and 0 < box.height <= 1
        assert 0 <= face.confidence <= 100
        assert tuple(lm.type for lm in face.landmarks) == LANDMARK_TYPES
        for lm in face.landmarks:
            # Landmarks sit on the face, give or take a margin.
            assert box.left - 0.2 * box.width <= lm.x <= box.left + 1.2 * box.width
            assert box.top - 0.2 * box.height <= lm.y <= box.top + 1.2 * box.height
        assert face.pose is not None and face.quality is not None
        assert 0 <= face.quality.brightness <= 100 and 0 <= face.quality.sharpness <= 100
    # Largest first.
    assert faces[0].box.area >= faces[1].box.area


def test_no_face(recognizer: Recognizer) -> None:
    recognizer.create_collection("empty")
    assert recognizer.detect_faces(img(NO_FACE)) == []
    with pytest.raises(NoFaceError):
        recognizer.search_faces_by_image("empty", img(NO_FACE))
    assert recognizer.identify_faces("empty", img(NO_FACE)) == []


def test_index_search_delete(recognizer: Recognizer) -> None:
    recognizer.create_collection("c")
    obama = recognizer.index_faces("c", img(IMAGES / "obama.jpg"), external_id="obama", max_faces=1)
    biden = recognizer.index_faces("c", img(IMAGES / "biden.jpg"), external_id="biden")
    assert len(obama.indexed) == 1 and len(biden.indexed) == 1
    assert recognizer.describe_collection("c").face_count == 2
    listed = {f.face_id: f.external_id for f in recognizer.list_faces("c")}
    assert listed == {obama.indexed[0].face_id: "obama", biden.indexed[0].face_id: "biden"}

    found = recognizer.search_faces_by_image("c", img(IMAGES / "obama2.jpg"))
    assert found.matches[0].external_id == "obama"
    assert found.matches[0].similarity >= 80
    assert all(m.similarity < 80 for m in found.matches if m.external_id == "biden")
    assert [m.similarity for m in found.matches] == sorted(
        (m.similarity for m in found.matches), reverse=True
    )
    strict = recognizer.search_faces_by_image("c", img(IMAGES / "obama2.jpg"), threshold=99.9)
    assert all(m.similarity >= 99.9 for m in strict.matches)

    by_id = recognizer.search_faces("c", obama.indexed[0].face_id)
    assert obama.indexed[0].face_id not in {m.face_id for m in by_id}

    deleted = recognizer.delete_faces("c", [obama.indexed[0].face_id, "no-such-face"])
    assert deleted == [obama.indexed[0].face_id]
    assert recognizer.describe_collection("c").face_count == 1
    after = recognizer.search_faces_by_image("c", img(IMAGES / "obama2.jpg"))
    assert {m.external_id for m in after.matches} <= {"biden"}


def test_identify_every_face(recognizer: Recognizer) -> None:
    recognizer.create_collection("c")
    recognizer.index_faces("c", img(IMAGES / "obama.jpg"), external_id="obama", max_faces=1)
    results = recognizer.identify_faces("c", img(TWO_PEOPLE))
    assert len(results) == 2
    assert all(r.matches for r in results)


def test_compare_faces(recognizer: Recognizer) -> None:
    same = recognizer.compare_faces(img(IMAGES / "obama.jpg"), img(IMAGES / "obama2.jpg"))
    assert same.matches[0].similarity >= 80
    other = recognizer.compare_faces(img(IMAGES / "obama.jpg"), img(IMAGES / "biden.jpg"))
    assert other.matches == [] and len(other.unmatched) == 1
    loose = recognizer.compare_faces(
        img(IMAGES / "obama.jpg"), img(IMAGES / "biden.jpg"), threshold=0
    )
    assert len(loose.matches) == 1 and loose.matches[0].similarity < 80
    with pytest.raises(NoFaceError):
        recognizer.compare_faces(img(NO_FACE), img(IMAGES / "obama.jpg"))
