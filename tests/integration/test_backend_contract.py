"""The face and tagging contracts (``facetrail.testing``) on every backend facetrail ships:
``local``, and ``rekognition`` pointed at a live `facetrail serve` instead of AWS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facetrail.backends import backend_class
from facetrail.backends.base import Backend
from facetrail.migrate import ensure_schema
from facetrail.settings import Settings
from facetrail.testing.backend_contract import BackendContract, ContractPhotos
from facetrail.testing.tagging_contract import TaggingContract, TaggingPhotos
from tests.conftest import DATA

FFMPEG = DATA / "dlib" / "dlib" / "test" / "ffmpeg_data"
PHOTOS = ContractPhotos.face_recognition(
    DATA / "face_recognition" / "tests" / "test_images",
    DATA / "face_recognition" / "examples",
    no_face=FFMPEG / "eagle.jpg",
)
TAGGING_PHOTOS = TaggingPhotos(labelled=FFMPEG / "dog.jpg", plain=PHOTOS.two_people)


@pytest.fixture(scope="module")
def serve_endpoint(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[str]:
    """A live `facetrail serve` (subprocess, own SQLite home) for the rekognition backend."""
    from facetrail.server.testing import serve_process

    with serve_process(tmp_path_factory.mktemp("serve"), models_dir=models_dir) as endpoint:
        yield endpoint


def _fresh(backend: Backend) -> Iterator[Backend]:
    # A served backend lives for the module: every test starts from no collections.
    for name in backend.list_collections():
        backend.delete_collection(name)
    yield backend
    backend.close()


class Shipped(BackendContract, TaggingContract):
    @pytest.fixture
    def photos(self) -> ContractPhotos:
        return PHOTOS

    @pytest.fixture
    def tagging_photos(self) -> TaggingPhotos:
        return TAGGING_PHOTOS


class TestLocal(Shipped):
    @pytest.fixture
    def backend(self, settings: Settings) -> Iterator[Backend]:
        ensure_schema(settings)
        yield from _fresh(backend_class("local")(settings))


class TestRekognition(Shipped):
    @pytest.fixture
    def backend(
        self, settings: Settings, monkeypatch: pytest.MonkeyPatch, serve_endpoint: str
    ) -> Iterator[Backend]:
        # The rekognition backend, unchanged, pointed at facetrail serve instead of AWS.
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        ensure_schema(settings)
        served = settings.with_(aws_endpoint_url=serve_endpoint, aws_region="us-east-1")
        yield from _fresh(backend_class("rekognition")(served))
