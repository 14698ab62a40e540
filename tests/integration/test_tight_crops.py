"""Small images and tight face crops: detection on them, and the notebook flow through serve."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from PIL import Image

from facetrail.backends.local.pipeline import FacePipeline
from facetrail.images import to_jpeg
from facetrail.server import make_server
from facetrail.settings import Settings
from tests.conftest import DATA, KNN
from tests.served import rekognition_client, serving

GROUP = KNN / "test" / "obama_and_biden.jpg"
IMAGES = DATA / "face_recognition" / "tests" / "test_images"


def tight_crops(rgb: Image.Image, boxes: Sequence[Sequence[float]]) -> list[Any]:
    """Each box (pixels) cropped exactly, clipped to the image."""
    out = []
    for x0, y0, x1, y1 in boxes:
        box = (max(0, round(x0)), max(0, round(y0)), min(rgb.width, round(x1)))
        out.append(rgb.crop((*box, min(rgb.height, round(y1)))))
    return out


def test_detects_faces_in_tight_small_crops(settings: Settings) -> None:
    pipeline = FacePipeline(settings)
    group = Image.open(GROUP).convert("RGB")
    # The photo shrunk to a notebook's 750 px: its tight crops are 49-70 px wide.
    small = group.resize((750, round(group.height * 750 / group.width)), Image.Resampling.LANCZOS)
    faces = pipeline.detect(small)
    assert len(faces) == 3
    for crop in tight_crops(small, [tuple(map(float, f.box)) for f in faces]):
        assert crop.width < 80
        found = pipeline.detect(crop)
        assert len(found) == 1, crop.size
        x0, y0, x1, y1 = found[0].box
        # Boxes in the crop's own pixels, inside it, covering most of it.
        assert 0 <= x0 < x1 <= crop.width and 0 <= y0 < y1 <= crop.height
        assert (x1 - x0) * (y1 - y0) > 0.5 * crop.width * crop.height
        assert np.all(found[0].landmarks >= 0)


def test_photo_without_faces_stays_without(settings: Settings) -> None:
    pipeline = FacePipeline(settings)
    eagle = Image.open(DATA / "dlib" / "dlib" / "test" / "ffmpeg_data" / "eagle.jpg")
    assert pipeline.detect(eagle.convert("RGB").resize((70, 60))) == []
    assert pipeline.detect(np.full((90, 70, 3), 127, np.uint8)) == []


@pytest.fixture
def client(settings: Settings) -> Iterator[Any]:
    with serving(make_server(settings, "127.0.0.1", 0)) as srv:
        yield rekognition_client(srv.url)


def test_notebook_searches_each_tight_crop(client: Any) -> None:
    client.create_collection(CollectionId="people")
    for name in ["obama", "biden"]:
        data = (IMAGES / f"{name}.jpg").read_bytes()
        client.index_faces(CollectionId="people", Image={"Bytes": data}, ExternalImageId=name)
    group = Image.open(GROUP).convert("RGB")
    small = group.resize((750, round(group.height * 750 / group.width)), Image.Resampling.LANCZOS)
    details = client.detect_faces(Image={"Bytes": to_jpeg(small)})["FaceDetails"]
    boxes = []
    for detail in details:
        b = detail["BoundingBox"]
        boxes.append(
            (
                b["Left"] * small.width,
                b["Top"] * small.height,
                (b["Left"] + b["Width"]) * small.width,
                (b["Top"] + b["Height"]) * small.height,
            )
        )
    named = []
    for crop in tight_crops(small, boxes):
        assert crop.width < 80  # refused as "minimum image dimensions are 80x80" before
        found = client.search_faces_by_image(
            CollectionId="people", Image={"Bytes": to_jpeg(crop)}, MaxFaces=1
        )
        named += [m["Face"]["ExternalImageId"] for m in found["FaceMatches"]]
        face = client.detect_faces(Image={"Bytes": to_jpeg(crop)})["FaceDetails"]
        assert len(face) == 1
    assert sorted(named) == ["biden", "obama"]  # the third face is a girl nobody enrolled


def test_tiny_image_is_refused(client: Any) -> None:
    tiny = io.BytesIO()
    Image.new("RGB", (19, 120)).save(tiny, "PNG")
    with pytest.raises(client.exceptions.InvalidParameterException, match="20x20"):
        client.detect_faces(Image={"Bytes": tiny.getvalue()})
