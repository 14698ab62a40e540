"""Tag jobs on the rekognition backend: the same batch through boto3, against `facetrail serve`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facetrail.api import Facetrail
from facetrail.settings import Settings
from tests import badinputs
from tests.conftest import DATA

pytest.importorskip("onnxruntime", reason="needs the tagging extra")

DOG = DATA / "dlib" / "dlib" / "test" / "ffmpeg_data" / "dog.jpg"
PAGE = DATA / "ocr" / "tesseract" / "phototest.tif"


@pytest.fixture
def endpoint(tmp_path: Path, models_dir: Path) -> Iterator[str]:
    from facetrail.server.testing import serve_process

    with serve_process(tmp_path / "serve", models_dir=models_dir) as url:
        yield url


def test_tag_through_boto3(settings: Settings, endpoint: str, tmp_path: Path) -> None:
    remote = settings.with_(backend="rekognition", aws_endpoint_url=endpoint)
    sources = [str(DOG), str(PAGE), str(badinputs.zero_bytes(tmp_path))]
    report = Facetrail(remote).tag(sources, ops=["labels", "text", "moderation"])
    assert report["backend"] == "rekognition"
    dog, page, empty = report["images"]
    assert "Dog" in {lb["Name"] for lb in dog["results"]["labels"]}
    lines = " ".join(t["DetectedText"] for t in page["results"]["text"] if t["Type"] == "LINE")
    assert "quick brown dog jumped" in lines
    assert (empty["status"], empty["error_code"]) == ("failed", "invalid_image")
    # The local tagger gives the same labels: one engine behind both paths.
    local = Facetrail(settings).tag([str(DOG)], ops=["labels"])
    assert {lb["Name"] for lb in local["images"][0]["results"]["labels"]} == {
        lb["Name"] for lb in dog["results"]["labels"]
    }
